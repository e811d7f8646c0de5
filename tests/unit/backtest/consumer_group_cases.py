"""The consumer group's state moving between members, as test bodies over any state store
location: SQLite here (tests/unit/backtest/test_consumer_group_state.py), the real PostgreSQL
that several instances share (tests/integration/backtest/test_consumer_group_postgres.py).

Two `BatchProcessor`s on one location stand for two instances of the group; the partitions
they own are what the group would assign them.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, text

from finplat.backtest.adapters.consumer_state import ConsumerStateStore, PartitionsLostError
from finplat.backtest.adapters.database import Location, make_engine
from finplat.backtest.service.processor import BatchOutcome
from tests.unit.backtest.service_support import TOPIC, encode, owning_processor, record, update

GROUP = "test-group"


class StoreAt:
    """New stores (each a new instance's) on the location under test, all closed at the end."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self._opened: list[ConsumerStateStore] = []

    def __call__(self) -> ConsumerStateStore:
        store = ConsumerStateStore(self.location, GROUP, TOPIC)
        self._opened.append(store)
        return store

    def close(self) -> None:
        for store in self._opened:
            store.close()


@contextmanager
def store_at(location: Location) -> Iterator[StoreAt]:
    stores = StoreAt(location)
    try:
        yield stores
    finally:
        stores.close()


def a_partition_moves_with_its_statistics_window_and_offset(new_store: StoreAt) -> None:
    first = owning_processor(new_store(), partitions=[0, 1])
    first.process([record(0, encode(update("a"))), record(1, encode(update("b")))])
    first.process([record(0, encode(update("c", symbol="ETHUSDT")), 1)])
    first.revoke([1])

    second = owning_processor(new_store(), partitions=[1])
    # "c" again: a redelivery the new owner must recognise from the window it took over.
    outcome = second.process(
        [record(1, encode(update("c", symbol="ETHUSDT")), 1),
         record(2, encode(update("d", symbol="ETHUSDT")), 1)]
    )  # fmt: skip

    assert outcome == BatchOutcome(counted=1, duplicates=1, dead_lettered=0)
    assert second.next_offset(1) == 3
    assert first.next_offset(1) is None
    # Either member answers for the whole group: its own partitions and the other's saved ones.
    for member in (first, second):
        stats = member.snapshot()
        assert (stats.total_messages, stats.duplicates) == (4, 1)
        assert {s.symbol: s.count for s in stats.symbols} == {"BTCUSDT": 2, "ETHUSDT": 2}


def a_member_the_group_gave_up_on_writes_nothing(new_store: StoreAt) -> None:
    stale = owning_processor(new_store(), partitions=[0])
    stale.process([record(0, encode(update("a")))])
    # The group moved partition 0 while `stale` was paused: it was never told.
    successor = owning_processor(new_store(), partitions=[0])

    with pytest.raises(PartitionsLostError) as lost:
        stale.process([record(1, encode(update("b"))), record(2, encode(update("c")))])
    stale.restore()

    assert lost.value.partitions == [0]
    assert stale.next_offset(0) is None  # dropped: no longer its partition
    assert successor.next_offset(0) == 1
    assert successor.snapshot().total_messages == 1
    # What the successor saves is what counts; the stale member's batch left no trace.
    successor.process([record(1, encode(update("b")))])
    assert new_store().others([])[0]["total"] == 2


def a_batch_touching_a_lost_partition_is_saved_for_none(new_store: StoreAt) -> None:
    member = owning_processor(new_store(), partitions=[0, 1])
    owning_processor(new_store(), partitions=[1])

    with pytest.raises(PartitionsLostError):
        member.process([record(0, encode(update("a"))), record(0, encode(update("b")), 1)])
    member.restore()
    # The batch was one transaction: partition 0's half was not saved either, and is read
    # again from its saved offset (none: the beginning).
    assert member.next_offset(0) is None
    member.process([record(0, encode(update("a")))])
    assert member.next_offset(0) == 1


def a_window_the_version_before_kept_per_key_is_taken_over(new_store: StoreAt) -> None:
    first = owning_processor(new_store(), partitions=[0])
    first.process([record(0, encode(update("a"))), record(1, encode(update("b")))])
    engine = make_engine(new_store.location)
    try:
        moved = _to_the_per_key_window(engine)
        second = owning_processor(new_store(), partitions=[0])
        outcome = second.process([record(2, encode(update("a"))), record(3, encode(update("c")))])

        assert moved == 2
        assert outcome == BatchOutcome(counted=1, duplicates=1, dead_lettered=0)
        with engine.begin() as connection:
            assert connection.execute(text("SELECT count(*) FROM consumer_seen")).scalar() == 0
            windows = text("SELECT first_seq, next_seq FROM consumer_window ORDER BY first_seq")
            assert connection.execute(windows).all() == [(0, 2), (2, 3)]
    finally:
        engine.dispose()


def _to_the_per_key_window(engine: Engine) -> int:
    """The state as the version before this one left it, the window one row per key."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE consumer_seen (group_id TEXT, topic TEXT, partition INTEGER,"
                " seq BIGINT, key TEXT NOT NULL, PRIMARY KEY (group_id, topic, partition, seq))"
            )
        )
        rows = connection.execute(
            text("SELECT group_id, topic, partition, first_seq, batch_keys FROM consumer_window")
        ).all()
        per_key = [
            {"g": g, "t": t, "p": p, "s": first + i, "k": k}
            for g, t, p, first, keys in rows
            for i, k in enumerate(json.loads(keys))
        ]
        connection.execute(text("INSERT INTO consumer_seen VALUES (:g, :t, :p, :s, :k)"), per_key)
        connection.execute(text("DELETE FROM consumer_window"))
    return len(per_key)

"""The poll loop on its thread: starts at stored offsets, recovers from failures, closes."""

import asyncio
import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest

from finplat.backtest.adapters.consumer_state import (
    ConsumerStateStore,
    PartitionChanges,
    SavedPartition,
)
from finplat.backtest.domain.stats import StreamStats
from finplat.backtest.errors import StoreError
from finplat.backtest.service.consumer import PartitionLag, StatsConsumer
from finplat.backtest.service.processor import BatchProcessor
from finplat.core.retry import RetryPolicy
from finplat.kafka.consumer import OnAssign, OnRevoke, Record
from finplat.kafka.serde import PriceUpdateDeserializer
from tests.support import eventually_async
from tests.unit.backtest.service_support import (
    TOPIC,
    FakeClock,
    FakeDeadLetters,
    FakeRegistry,
    encode,
    update,
)

GROUP = "test-group"


class FakeSource:
    """An in-memory topic; assignment happens on the first poll, as with a real group."""

    topic = TOPIC

    def __init__(self, log: dict[int, list[bytes]]) -> None:
        self.log = log
        self.brokers_down = False
        self.position: dict[int, int] = {}
        self.starts: dict[int, int] = {}
        self.commits: list[dict[int, int]] = []
        self.rewinds: list[dict[int, int | None]] = []
        self.closed = False
        self._on_assign: OnAssign | None = None
        self._on_revoke: OnRevoke | None = None

    def subscribe(self, on_assign: OnAssign, on_revoke: OnRevoke) -> None:
        self._on_assign, self._on_revoke = on_assign, on_revoke

    def poll(self, max_messages: int, timeout_s: float) -> list[Record]:
        if self._on_assign is not None:
            self.starts = dict(self._on_assign(sorted(self.log)))
            self.position = {p: self.starts.get(p, 0) for p in self.log}
            self._on_assign = None
        batch: list[Record] = []
        for partition, values in sorted(self.log.items()):
            while self.position[partition] < len(values) and len(batch) < max_messages:
                offset = self.position[partition]
                batch.append(Record(TOPIC, partition, offset, None, values[offset], ()))
                self.position[partition] += 1
        return batch

    def rewind(self, offsets: Mapping[int, int | None]) -> None:
        self.rewinds.append(dict(offsets))
        for partition, offset in offsets.items():
            self.position[partition] = offset or 0

    def end_offsets(self, partitions: Any) -> dict[int, int]:
        return {p: len(self.log[p]) for p in partitions}

    def commit(self, next_offsets: Mapping[int, int], *, wait: bool) -> None:
        self.commits.append(dict(next_offsets))

    def close(self) -> None:
        if self._on_revoke is not None:
            self._on_revoke(sorted(self.log))
        self.closed = True


class FlakyStore(ConsumerStateStore):
    """The real store, whose first `failures` saves fail like a full disk."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path, GROUP, TOPIC)
        self.failures = failures

    def save(self, changes: Mapping[int, PartitionChanges]) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("fake disk full")
        super().save(changes)


class AwayAtClaimStore(ConsumerStateStore):
    """The real store, away for the first `failures` claims, as a database restarting."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path, GROUP, TOPIC)
        self.failures = failures

    def claim(self, partitions: Collection[int]) -> dict[int, SavedPartition]:
        if self.failures:
            self.failures -= 1
            raise StoreError("fake connection refused")
        return super().claim(partitions)


def _consumer(source: FakeSource, store: ConsumerStateStore) -> StatsConsumer:
    lock = threading.Lock()
    processor = BatchProcessor(
        lambda: StreamStats(FakeClock(), dedup_capacity=1000),
        PriceUpdateDeserializer(FakeRegistry()), FakeDeadLetters(), store, lock, 1.0,
    )  # fmt: skip
    return StatsConsumer(
        source, processor, lock, max_messages=3, poll_timeout_s=0.01,
        retry=RetryPolicy(initial_s=0.01, max_s=0.01),
    )  # fmt: skip


def _seen(consumer: StatsConsumer) -> int:
    stats, _ = consumer.snapshot()
    return stats.total_messages + stats.duplicates


async def _run_until(consumer: StatsConsumer, total: int) -> None:
    task = asyncio.create_task(consumer.run())
    await eventually_async(lambda: _seen(consumer) >= total, timeout_s=5)
    consumer.stop()
    await task


def _values(keys: str) -> list[bytes]:
    return [encode(update(key)) for key in keys]


@pytest.mark.asyncio
async def test_restart_starts_at_stored_offsets_and_counts_exactly(tmp_path: Path) -> None:
    path = tmp_path / "consumer.sqlite3"
    log = {0: _values("abcd"), 1: _values("ef")}
    first_source = FakeSource(log)
    first = _consumer(first_source, ConsumerStateStore(path, GROUP, TOPIC))
    await _run_until(first, 6)
    log[0].extend(_values("gd"))  # "d" is produced again: a duplicate

    second_source = FakeSource(log)
    second = _consumer(second_source, ConsumerStateStore(path, GROUP, TOPIC))
    await _run_until(second, 8)

    assert second_source.starts == {0: 4, 1: 2}
    stats, _ = second.snapshot()
    assert (stats.total_messages, stats.duplicates) == (7, 1)
    assert first_source.closed
    assert second_source.closed
    assert second_source.commits[-1] == {0: 6, 1: 2}
    _, lags = second.snapshot()
    assert lags == ()  # revoked on close


@pytest.mark.asyncio
async def test_failed_save_is_retried_without_loss_or_double_count(tmp_path: Path) -> None:
    source = FakeSource({0: _values("abcdefg")})
    consumer = _consumer(source, FlakyStore(tmp_path / "s.db", 2))

    await _run_until(consumer, 7)

    stats, _ = consumer.snapshot()
    assert (stats.total_messages, stats.duplicates) == (7, 0)
    assert source.rewinds[0] == {0: None}  # nothing was saved yet: read from the beginning
    assert len(source.rewinds) == 2


@pytest.mark.asyncio
async def test_lag_is_reported_per_assigned_partition(tmp_path: Path) -> None:
    source = FakeSource({0: _values("ab"), 1: _values("c")})
    consumer = _consumer(source, ConsumerStateStore(tmp_path / "s.db", GROUP, TOPIC))
    task = asyncio.create_task(consumer.run())

    await eventually_async(lambda: len(consumer.snapshot()[1]) == 2, timeout_s=5)
    _, lags = consumer.snapshot()
    consumer.stop()
    await task

    assert [(lag.partition, lag.next_offset, lag.end_offset, lag.lag) for lag in lags] == [
        (0, 2, 2, 0),
        (1, 1, 1, 0),
    ]


def test_lag_is_end_minus_next_offset() -> None:
    assert PartitionLag(TOPIC, 0, next_offset=5, end_offset=9).lag == 4


@pytest.mark.asyncio
async def test_partitions_wait_for_their_state_while_the_store_is_away(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = _consumer(FakeSource({0: _values("ab")}), ConsumerStateStore(path, GROUP, TOPIC))
    await _run_until(first, 2)
    source = FakeSource({0: _values("abc")})  # "c" is new since the first run
    consumer = _consumer(source, AwayAtClaimStore(path, 2))

    await _run_until(consumer, 3)

    # Assigned only once the saved state was read: started after "a" and "b", counted "c".
    assert source.starts == {0: 2}
    stats, _ = consumer.snapshot()
    assert (stats.total_messages, stats.duplicates) == (3, 0)

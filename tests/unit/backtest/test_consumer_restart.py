"""Batches persisted with their offsets in SQLite: restarts neither lose nor double-count."""

import sqlite3
from pathlib import Path

import pytest

from finplat.backtest.adapters.consumer_state import ConsumerStateStore
from finplat.backtest.domain.stats import StatsSnapshot
from finplat.backtest.service.processor import BatchOutcome
from finplat.kafka.errors import DeliveryError
from tests.unit.backtest.service_support import (
    TOPIC,
    FakeDeadLetters,
    encode,
    owning_processor,
    record,
    update,
)


class Service:
    """One 'process lifetime' of the consumer's processing over a state file, owning
    partition 0 from the start."""

    def __init__(self, path: Path, dead_letters: FakeDeadLetters, capacity: int = 100) -> None:
        self.store = ConsumerStateStore(path, "test-group", TOPIC)
        self.processor = owning_processor(self.store, dead_letters, capacity=capacity)

    @property
    def stats(self) -> StatsSnapshot:
        return self.processor.snapshot()

    def stop(self) -> None:
        self.store.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "consumer.sqlite3"


def test_restart_resumes_counts_offsets_and_duplicate_detection(path: Path) -> None:
    letters = FakeDeadLetters()
    first = Service(path, letters)
    first.processor.process(
        [record(0, encode(update("a"))), record(1, encode(update("b"))),
         record(2, encode(update("b")))]
    )  # fmt: skip
    first.stop()

    second = Service(path, letters)
    # A producer retry re-sends "a" after the restart; "c" is new.
    outcome = second.processor.process(
        [record(3, encode(update("a"))), record(4, encode(update("c")))]
    )

    assert outcome == BatchOutcome(counted=1, duplicates=1, dead_lettered=0)
    assert (second.stats.total_messages, second.stats.duplicates) == (3, 2)
    assert second.processor.next_offset(0) == 5
    second.stop()
    third = Service(path, letters)
    assert (third.stats.total_messages, third.stats.duplicates) == (3, 2)
    assert third.processor.next_offset(0) == 5
    assert third.stats.symbols[0].count == 3


def test_poison_message_is_dead_lettered_counted_and_passed(path: Path) -> None:
    letters = FakeDeadLetters()
    service = Service(path, letters)
    poison = record(1, b"not avro at all")

    outcome = service.processor.process(
        [record(0, encode(update("a"))), poison, record(2, encode(update("b")))]
    )

    assert outcome == BatchOutcome(counted=2, duplicates=0, dead_lettered=1)
    assert [(r.offset, "magic byte 110" in reason) for r, reason in letters.sent] == [(1, True)]
    assert (service.stats.decode_errors, service.stats.dead_lettered) == (1, 1)
    assert service.processor.next_offset(0) == 3


def test_failed_batch_is_rolled_back_by_restore(path: Path) -> None:
    letters = FakeDeadLetters()
    service = Service(path, letters)
    service.processor.process([record(0, encode(update("a")))])
    letters.fail = True

    with pytest.raises(DeliveryError):
        service.processor.process([record(1, encode(update("b"))), record(2, b"\x01bad")])
    service.processor.restore()

    assert (service.stats.total_messages, service.stats.decode_errors) == (1, 0)
    assert service.processor.next_offset(0) == 1
    letters.fail = False
    service.processor.process([record(1, encode(update("b"))), record(2, b"\x01bad")])
    stats = service.stats
    assert (stats.total_messages, stats.decode_errors, stats.dead_lettered) == (2, 1, 1)


def test_dedup_window_is_bounded_across_restarts(path: Path) -> None:
    letters = FakeDeadLetters()
    first = Service(path, letters, capacity=2)
    first.processor.process([record(i, encode(update(k))) for i, k in enumerate("abc")])
    first.stop()

    second = Service(path, letters, capacity=2)
    outcome = second.processor.process(
        [record(3, encode(update("c"))), record(4, encode(update("a")))]
    )

    # "c" is still remembered; "a" was forgotten (capacity 2) and so counts again.
    assert outcome == BatchOutcome(counted=1, duplicates=1, dead_lettered=0)
    second.stop()

    third = Service(path, letters, capacity=2)
    assert len(third.store.load([0])[0].seen) == 3 + 1  # the first batch's row still holds "c"
    outcome = third.processor.process(
        [record(5 + i, encode(update(k))) for i, k in enumerate("cab")]
    )

    # The window is "c" and "a" again; "b" fell out in the first run, and counts again.
    assert outcome == BatchOutcome(counted=1, duplicates=2, dead_lettered=0)
    # "c" fell out now ("a", "b" kept): the first batch's row is gone.
    stored = third.store.load([0])[0].seen
    assert [(seq, key.split("\x1f")[-1]) for seq, key in stored] == [(3, "a"), (4, "b")]


def test_the_single_state_of_an_earlier_version_is_named_not_read(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as earlier:
        earlier.execute("CREATE TABLE stats (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
        earlier.execute("""INSERT INTO stats VALUES (1, '{"total": 5}')""")
    earlier.close()

    service = Service(path, FakeDeadLetters())

    assert service.stats.total_messages == 0
    assert service.processor.next_offset(0) is None
    assert "holds the state of an earlier version" in caplog.text
    service.stop()

"""Bad messages cost no good data: dead-lettered with their reason, counted once, never stored."""

from pathlib import Path

import pytest

from finplat.backtest.adapters.consumer_state import ConsumerStateStore
from finplat.backtest.service.metrics import BacktestCollector, BacktestSources, CountingResults
from finplat.backtest.service.processor import BatchOutcome, BatchProcessor
from finplat.kafka.errors import DeliveryError
from tests.unit.backtest.service_support import (
    TOPIC,
    FakeDeadLetters,
    encode,
    owning_processor,
    record,
    update,
)
from tests.unit.backtest.test_metrics_endpoint import (
    FakeConsumer,
    FakeResults,
    FakeStatsView,
    Snapshots,
)


def _store(path: Path) -> ConsumerStateStore:
    return ConsumerStateStore(path, "test-group", TOPIC)


def _processor(path: Path, letters: FakeDeadLetters) -> BatchProcessor:
    return owning_processor(_store(path), letters)


def _labels(stats: Snapshots, family: str) -> dict[str, float]:
    sources = BacktestSources(
        FakeStatsView(stats), CountingResults(FakeResults()), FakeConsumer(True, True)
    )
    (metric,) = [m for m in BacktestCollector(sources).collect() if m.name == family]
    return {next(iter(s.labels.values())): s.value for s in metric.samples}


def test_each_bad_message_is_dead_lettered_with_its_reason_and_leaves_no_trace(
    tmp_path: Path,
) -> None:
    letters = FakeDeadLetters()
    processor = _processor(tmp_path / "consumer.sqlite3", letters)
    batch = [
        record(0, encode(update("good"))),
        record(1, encode(update("lower", symbol="btcusdt"))),
        record(2, encode(update("long", symbol="B" * 10_000))),
        record(3, encode(update("ctrl", symbol="BTC\x07"))),
        record(4, encode(update("nan", price="NaN"))),
        record(5, encode(update("future", timestamp=1_700_000_000_000_000))),
        record(6, b"\x00\x00\x00\x00\x07garbage"),
    ]

    outcome = processor.process(batch)

    assert outcome == BatchOutcome(counted=1, duplicates=0, dead_lettered=6)
    assert [(r.offset, reason.split(":")[0]) for r, reason in letters.sent] == [
        (1, "invalid_symbol"),
        (2, "invalid_symbol"),
        (3, "invalid_symbol"),
        (4, "invalid_price"),
        (5, "invalid_timestamp"),
        (6, "undecodable"),
    ]
    assert all(len(reason) < 200 for _, reason in letters.sent)
    saved = _store(tmp_path / "consumer.sqlite3").claim([0])[0]
    assert saved.stats is not None
    assert list(saved.stats["symbols"]) == ["BTCUSDT"]
    assert [key for _, key in saved.seen] == ["BTCUSDT\x1f1\x1fgood"]
    assert saved.stats["rejected"] == {
        "invalid_symbol": 3,
        "invalid_price": 1,
        "invalid_timestamp": 1,
        "undecodable": 1,
    }
    assert _labels(processor, "finplat_backtest_symbol_messages") == {"BTCUSDT": 1}
    assert _labels(processor, "finplat_backtest_rejected_messages") == {
        "undecodable": 1,
        "invalid_symbol": 3,
        "invalid_price": 1,
        "invalid_volume": 0,
        "invalid_timestamp": 1,
        "invalid_event_id": 0,
    }


def test_a_rejection_retried_after_a_failed_batch_is_counted_once(tmp_path: Path) -> None:
    letters = FakeDeadLetters(fail=True)
    processor = _processor(tmp_path / "consumer.sqlite3", letters)
    batch = [record(0, encode(update("a"))), record(1, encode(update("b", symbol="eth")))]

    with pytest.raises(DeliveryError):
        processor.process(batch)
    processor.restore()
    letters.fail = False
    processor.process(batch)

    snapshot = processor.snapshot()
    assert snapshot.rejected == {"invalid_symbol": 1}
    assert (snapshot.total_messages, snapshot.decode_errors, snapshot.dead_lettered) == (1, 1, 1)

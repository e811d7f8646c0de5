"""Live statistics: exact counts, decimals and rates, computed by hand."""

from decimal import Decimal
from typing import Any

import pytest

from finance.market.v1 import market_pb2
from finplat.backtest.domain.dedup import DedupChanges, DedupWindow
from finplat.backtest.domain.stats import (
    RateWindow,
    StatsSnapshot,
    StreamStats,
    SymbolSnapshot,
    merge_snapshots,
)
from finplat.backtest.domain.update_checks import RejectReason
from finplat.backtest.errors import InvalidUpdateError
from tests.unit.backtest.service_support import FakeClock, update


def test_counts_per_symbol_with_exact_decimals_and_duplicates() -> None:
    clock = FakeClock(10.2)
    stats = StreamStats(clock, dedup_capacity=100)
    steps = [
        (10.2, update("1", price="100.50", volume="0.1", timestamp=1000)),
        (10.7, update("2", price="99.25", volume="0.20", timestamp=3000)),
        # Arrives later but happened earlier: it must not become the last price.
        (11.5, update("3", price="101.00000000", volume="0.3", timestamp=2000)),
        (11.6, update("2", price="99.25", volume="0.20", timestamp=3000)),
        (11.7, update("1", symbol="ETHUSDT", price="2000", volume="1", timestamp=5000)),
        (12.0, update("1", price="100", volume="0.05", timestamp=4000,
                      kind=market_pb2.EVENT_KIND_AGG_TRADE)),
    ]  # fmt: skip
    counted = []

    for now, item in steps:
        clock.now = now
        counted.append(stats.observe(item))
    snapshot = stats.snapshot()

    assert counted == [True, True, True, False, True, True]
    assert snapshot.total_messages == 5
    assert snapshot.duplicates == 1
    btc, eth = snapshot.symbols
    assert (btc.symbol, btc.count, btc.first_event_ms, btc.last_event_ms) == (
        "BTCUSDT",
        4,
        1000,
        4000,
    )
    assert (btc.last_price, btc.min_price, btc.max_price) == ("100", "99.25", "101.00000000")
    assert btc.volume == "0.65"
    assert btc.messages_per_second == pytest.approx(4 / 60)
    assert (eth.symbol, eth.count, eth.last_price, eth.volume) == ("ETHUSDT", 1, "2000", "1")
    assert snapshot.uptime_s == pytest.approx(12.0 - 10.2)


def test_volume_sum_stays_exact_where_floats_would_not() -> None:
    stats = StreamStats(FakeClock(), dedup_capacity=10)

    for index in range(3):
        stats.observe(update(str(index), volume="0.1"))

    assert stats.snapshot().symbols[0].volume == "0.3"  # 0.1 + 0.1 + 0.1 != 0.3 in floats


def test_rate_window_covers_the_last_sixty_whole_seconds() -> None:
    window = RateWindow()
    for _ in range(3):
        window.add(10.5)
    window.add(40.0)

    assert window.per_second(69.99) == pytest.approx(4 / 60)
    assert window.per_second(70.0) == pytest.approx(1 / 60)
    assert window.per_second(100.0) == 0.0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"symbol": "btcusdt"}, "invalid_symbol: "),
        ({"symbol": "B" * 10_000}, "invalid_symbol: "),
        ({"price": "NaN"}, "invalid_price: price is not a plain decimal"),
        ({"price": "0"}, "invalid_price: price must be positive"),
        ({"volume": "-2"}, "invalid_volume: volume is not a plain decimal"),
        ({"timestamp": -5}, "invalid_timestamp: "),
    ],
)
def test_invalid_updates_raise_before_anything_is_counted(
    bad: dict[str, Any], message: str
) -> None:
    stats = StreamStats(FakeClock(), dedup_capacity=10)

    with pytest.raises(InvalidUpdateError, match=message):
        stats.observe(update("1", **bad))

    assert (stats.total, stats.snapshot().symbols, len(stats.dedup)) == (0, (), 0)
    assert stats.to_state()["symbols"] == {}
    assert stats.observe(update("1", price="5", volume="1")) is True  # its key was not taken


def test_rejections_count_per_reason_and_as_decode_errors() -> None:
    stats = StreamStats(FakeClock(), dedup_capacity=10)

    stats.reject(RejectReason.SYMBOL)
    stats.reject(RejectReason.UNDECODABLE)
    stats.reject(RejectReason.SYMBOL)

    snapshot = stats.snapshot()
    assert snapshot.rejected == {"invalid_symbol": 2, "undecodable": 1}
    assert (snapshot.decode_errors, snapshot.total_messages) == (3, 0)


def test_a_state_saved_before_reasons_existed_loads_with_none() -> None:
    stats = StreamStats(FakeClock(), dedup_capacity=10)
    stats.reject(RejectReason.PRICE)

    stats.load_state(
        {"total": 4, "decode_errors": 2, "dead_lettered": 2, "duplicates": 0, "symbols": {}}
    )

    assert (stats.snapshot().rejected, stats.decode_errors) == ({}, 2)


def test_updates_without_event_id_are_always_counted() -> None:
    stats = StreamStats(FakeClock(), dedup_capacity=10)

    results = [stats.observe(update("")) for _ in range(2)]

    assert results == [True, True]
    assert stats.total == 2


def test_state_round_trip_keeps_counts_and_exact_values() -> None:
    stats = StreamStats(FakeClock(), dedup_capacity=10)
    stats.observe(update("1", price="1.10", volume="0.12345678901234567890"))
    stats.observe(update("2", price="0.9", volume="2"))
    stats.reject(RejectReason.VOLUME)
    stats.reject(RejectReason.UNDECODABLE)
    stats.reject(RejectReason.VOLUME)
    stats.dead_lettered = 2
    restored = StreamStats(FakeClock(), dedup_capacity=10)

    restored.load_state(stats.to_state())
    restored.observe(update("3", price="1.2", volume="1"))

    snap = restored.snapshot()
    assert (snap.total_messages, snap.decode_errors, snap.dead_lettered) == (3, 3, 2)
    assert snap.rejected == {"invalid_volume": 2, "undecodable": 1}
    sym = snap.symbols[0]
    assert (sym.min_price, sym.max_price, sym.last_price) == ("0.9", "1.2", "1.2")
    assert Decimal(sym.volume) == Decimal("3.12345678901234567890")


def test_dedup_window_forgets_the_oldest_key_first() -> None:
    window = DedupWindow(capacity=2)

    added = [window.add(key) for key in ("a", "b", "a", "c", "a")]

    assert added == [True, True, False, True, True]  # "a" was evicted by "c"
    changes = window.take_changes()
    assert (changes.first_seq, changes.added) == (0, ["a", "b", "c", "a"])
    assert changes.keep_from_seq == 2  # "c" (seq 2) and the second "a" (seq 3) remain
    assert window.take_changes() == DedupChanges(4, [], 2)


def test_dedup_window_restores_the_newest_keys_whatever_older_ones_are_stored() -> None:
    # As stored one row per batch: "a" (seq 0) fell out, then came again as seq 3.
    window = DedupWindow(capacity=2)

    window.restore([(3, "a"), (1, "b"), (0, "a"), (2, "c")])

    assert ("b" in window, "c" in window, "a" in window) == (False, True, True)
    assert window.oldest_seq() == 2
    assert window.add("d")
    assert ("c" in window, "a" in window) == (False, True)  # "c" was the oldest


def _symbol(**fields: Any) -> SymbolSnapshot:
    defaults: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "count": 1,
        "first_event_ms": 1000,
        "last_event_ms": 1000,
        "last_price": "100",
        "min_price": "100",
        "max_price": "100",
        "volume": "1",
        "messages_per_second": 0.0,
    }
    return SymbolSnapshot(**(defaults | fields))


def _part(*symbols: SymbolSnapshot, **fields: Any) -> StatsSnapshot:
    defaults: dict[str, Any] = {
        "total_messages": sum(s.count for s in symbols),
        "symbols": symbols,
        "decode_errors": 0,
        "dead_lettered": 0,
        "duplicates": 0,
        "uptime_s": 1.0,
    }
    return StatsSnapshot(**(defaults | fields))


def test_partitions_merge_into_the_whole_streams_figures() -> None:
    btc = _symbol(count=3, volume="0.30")
    eth = _symbol(symbol="ETHUSDT", count=2, last_price="2000", volume="2")
    first = _part(btc, decode_errors=1, dead_lettered=1, duplicates=4, uptime_s=5.0,
                  rejected={"undecodable": 1})  # fmt: skip
    second = _part(eth, decode_errors=2, dead_lettered=2, duplicates=1, uptime_s=3.0,
                   rejected={"undecodable": 1, "bad_price": 1})  # fmt: skip

    merged = merge_snapshots([first, second])

    assert merged == StatsSnapshot(
        total_messages=5,
        symbols=(btc, eth),
        decode_errors=3,
        dead_lettered=3,
        duplicates=5,
        uptime_s=5.0,
        rejected={"undecodable": 2, "bad_price": 1},
    )


def test_a_symbol_counted_in_two_partitions_merges_as_one_count_would() -> None:
    # Partitions added to the topic move a symbol's later updates to another partition.
    before = _symbol(count=2, first_event_ms=1000, last_event_ms=2000, last_price="101.5",
                     min_price="99.5", max_price="101.5", volume="0.1",
                     messages_per_second=0.5)  # fmt: skip
    after = _symbol(count=3, first_event_ms=3000, last_event_ms=5000, last_price="100",
                    min_price="100", max_price="1000.0", volume="0.2",
                    messages_per_second=1.0)  # fmt: skip

    (merged,) = merge_snapshots([_part(after), _part(before)]).symbols

    assert merged == _symbol(count=5, first_event_ms=1000, last_event_ms=5000, last_price="100",
                             min_price="99.5", max_price="1000.0", volume="0.3",
                             messages_per_second=1.5)  # fmt: skip


def test_no_partitions_are_an_empty_stream() -> None:
    assert merge_snapshots([]) == StatsSnapshot(0, (), 0, 0, 0, 0.0, {})

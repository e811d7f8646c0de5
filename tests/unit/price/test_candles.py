"""Candles from trades and coarse candles from 1m, checked against Binance's own klines."""

import itertools
from datetime import date
from pathlib import Path

import pytest

from finance.market.v1 import market_pb2
from finplat.binance import archive
from finplat.market.aggregate import CandleAggregator, aggregate
from finplat.market.intervals import parse_interval
from finplat.price.domain.candles import CandleBuilder

DAY = "2017-08-17"
DAY_END_MS = 1503014400000  # 2017-08-18 00:00 UTC
MINUTE = parse_interval("1m")
HALF_HOUR = parse_interval("30m")


def _built_from_trades(data_dir: Path) -> list[market_pb2.Candle]:
    builder = CandleBuilder("BTCUSDT", MINUTE)
    candles: list[market_pb2.Candle] = []
    for trade in archive.iter_trades(data_dir / f"trades/spot/BTCUSDT/BTCUSDT-trades-{DAY}.csv.gz"):
        candles += builder.add_trade(trade.price, trade.quantity, trade.time_ms)
    return candles + builder.advance(DAY_END_MS)


def test_candles_from_trades_equal_binance_klines_on_every_minute(data_dir: Path) -> None:
    expected = archive.load_klines(
        data_dir / f"klines/spot/BTCUSDT/1m/BTCUSDT-1m-{DAY}.csv.gz", "BTCUSDT"
    )

    built = _built_from_trades(data_dir)

    assert len(built) == len(expected) == 1200
    mismatches = [(b, e) for b, e in zip(built, expected, strict=True) if b != e]
    assert mismatches == []


def test_minutes_without_trades_carry_the_previous_close(data_dir: Path) -> None:
    built = _built_from_trades(data_dir)

    empty = [c for c in built if c.trade_count == 0]

    assert len(empty) == 369  # SOURCE.md
    assert all(c.volume == c.quote_volume == "0.00000000" for c in empty)
    assert all(c.open == c.high == c.low == c.close for c in empty)
    by_open = {c.open_time: c for c in built}
    assert all(c.open == by_open[c.open_time - 60_000].close for c in empty)


def test_builder_sums_exactly_and_formats_eight_decimals() -> None:
    builder = CandleBuilder("BTCUSDT", MINUTE)
    builder.add_trade("0.1", "0.3", 1_000)
    builder.add_trade("0.2", "0.1", 2_000)

    (candle,) = builder.advance(60_000)

    assert (candle.open, candle.high, candle.low, candle.close) == (
        "0.10000000",
        "0.20000000",
        "0.10000000",
        "0.20000000",
    )
    assert (candle.volume, candle.quote_volume, candle.trade_count) == (
        "0.40000000",
        "0.05000000",
        2,
    )
    assert candle.closed


def test_builder_counts_late_trades_and_shows_the_forming_candle() -> None:
    builder = CandleBuilder("BTCUSDT", MINUTE)
    builder.add_trade("10", "1", 61_000)

    assert builder.add_trade("9", "1", 1_000) == []
    assert builder.late_trades == 1
    forming = builder.forming()
    assert forming is not None
    assert (forming.open_time, forming.closed) == (60_000, False)


def _rest_30m(data_dir: Path, symbol: str) -> dict[int, market_pb2.Candle]:
    files = sorted((data_dir / "klines_rest_json/30m" / symbol).glob("*.json"))
    return {c.open_time: c for f in files for c in archive.load_rest_klines(f, symbol, "30m")}


def test_1m_klines_aggregated_to_30m_equal_binance_rest_30m(data_dir: Path) -> None:
    files = archive.kline_files(data_dir, "BTCUSDT", date(2024, 10, 1))
    minutes = archive.load_kline_table("BTCUSDT", files).candles()
    rest = _rest_30m(data_dir, "BTCUSDT")

    built = aggregate(minutes, HALF_HOUR)

    overlapping = [c for c in built if c.open_time in rest]
    assert len(overlapping) == 4752  # Q4-2024 and 2025-01-01..07 (SOURCE.md)
    assert [c for c in overlapping if c != rest[c.open_time]] == []


def test_eth_ohlcv_aggregated_to_30m_equals_rest_on_complete_buckets(data_dir: Path) -> None:
    minutes = archive.load_kline_table(
        "ETHUSDT", archive.ohlcv_files(data_dir, "ETHUSDT")
    ).candles()
    rest = _rest_30m(data_dir, "ETHUSDT")

    complete = [c for c in aggregate(minutes, HALF_HOUR) if c.closed]

    assert len(complete) == 1666  # SOURCE.md
    fields = ("open_time", "close_time", "open", "high", "low", "close", "volume")
    for candle in complete:
        expected = rest[candle.open_time]
        assert [getattr(candle, f) for f in fields] == [getattr(expected, f) for f in fields]
    assert all(c.quote_volume == "" for c in complete)  # not in the source: left empty


@pytest.mark.parametrize("code", ["1h", "1d", "1w", "1M"])
def test_coarser_buckets_are_contiguous_and_conserve_volume(data_dir: Path, code: str) -> None:
    minutes = archive.load_kline_table(
        "BTCUSDT", archive.kline_files(data_dir, "BTCUSDT", date(2024, 10, 1), date(2024, 12, 31))
    ).candles()
    spec = parse_interval(code)

    built = aggregate(minutes, spec)

    assert all(spec.next_start(a.open_time) == b.open_time for a, b in itertools.pairwise(built))
    assert sum(c.trade_count for c in built) == sum(c.trade_count for c in minutes)


def test_a_bucket_cut_short_is_not_closed() -> None:
    minute = market_pb2.Candle(
        symbol="X", interval=MINUTE.proto, open_time=0, close_time=59_999, open="1", high="1",
        low="1", close="1", volume="1", quote_volume="1", trade_count=1, closed=True,
    )  # fmt: skip
    aggregator = CandleAggregator(HALF_HOUR)

    assert aggregator.add(minute) == []
    (partial,) = aggregator.flush()

    assert not partial.closed

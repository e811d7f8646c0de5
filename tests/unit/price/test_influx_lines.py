"""Line protocol of ticks: a value InfluxDB would refuse is rejected before the write, alone."""

import pytest

from finance.market.v1 import market_pb2
from finplat.price.adapters.errors import StoreRejectedError
from finplat.price.adapters.influx_market import candle_line, tick_line


def _update(price: str) -> market_pb2.PriceUpdate:
    return market_pb2.PriceUpdate(
        symbol="BTCUSDT",
        price=price,
        volume="0.5",
        timestamp=1_700_000_000_000,
        kind=market_pb2.EVENT_KIND_TRADE,
        exchange="binance",
    )


def test_the_largest_int64_price_is_written() -> None:
    line = tick_line(_update("92233720368.54775807"))

    assert "price_e8=9223372036854775807i" in line


def test_a_price_past_int64_is_rejected_before_writing() -> None:
    with pytest.raises(StoreRejectedError, match="64-bit"):
        tick_line(_update("92233720368.54775808"))


def _tick_at(timestamp_ms: int, event_id: str) -> market_pb2.PriceUpdate:
    update = _update("1.5")
    update.timestamp, update.event_id = timestamp_ms, event_id
    return update


def test_the_last_nanosecond_influxdb_takes_is_written() -> None:
    line = tick_line(_tick_at(9_223_372_036_854, "775806"))

    assert line.endswith(" 9223372036854775806")


def test_a_tick_past_influxdbs_last_nanosecond_is_rejected_before_writing() -> None:
    # A frame with its time in microseconds, read as milliseconds, lands here.
    with pytest.raises(StoreRejectedError, match="outside InfluxDB's range"):
        tick_line(_tick_at(9_223_372_036_854, "775807"))


def _candle_at(open_time: int) -> market_pb2.Candle:
    return market_pb2.Candle(
        symbol="BTCUSDT", interval=market_pb2.INTERVAL_1M, open_time=open_time, open="1"
    )


def test_the_first_millisecond_influxdb_takes_is_written() -> None:
    assert candle_line(_candle_at(-9_223_372_036_854)).endswith(" -9223372036854")


@pytest.mark.parametrize("open_time", [-9_223_372_036_855, 9_223_372_036_855])
def test_a_candle_time_outside_influxdbs_range_is_rejected(open_time: int) -> None:
    with pytest.raises(StoreRejectedError, match="outside InfluxDB's range"):
        candle_line(_candle_at(open_time))


@pytest.mark.parametrize(
    ("exchange", "tag"),
    [
        ("binance", "binance"),
        ("Binance US", "binance_us"),
        ("okx,spot=1", "okx_spot_1"),
        ("", "unknown"),
    ],
)
def test_the_exchange_tag_keeps_only_lowercase_letters_digits_and_underscores(
    exchange: str, tag: str
) -> None:
    update = _update("1.5")
    update.exchange = exchange

    assert tick_line(update).startswith(f"ticks,symbol=BTCUSDT,kind=trade,exchange={tag} ")

"""Line protocol of ticks: a value InfluxDB would refuse is rejected before the write, alone."""

import pytest

from finance.market.v1 import market_pb2
from finplat.price.adapters.errors import StoreRejectedError
from finplat.price.adapters.influx_market import tick_line


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

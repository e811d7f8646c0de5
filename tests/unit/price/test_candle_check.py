"""The check every candle passes before it is stored."""

import pytest

from finance.market.v1 import market_pb2
from finplat.price.domain.candle_check import CandleFault, candle_fault

# The largest price fixed point holds: 2^63 - 1 units of 10^-8.
INT64_MAX_E8 = "92233720368.54775807"


def _candle(**values: str) -> market_pb2.Candle:
    candle = market_pb2.Candle(
        symbol="BTCUSDT",
        open_time=1_700_000_040_000,
        open="10.0",
        high="12.5",
        low="9.5",
        close="11.0",
        volume="3.0",
        quote_volume="31.5",
    )
    for name, text in values.items():
        setattr(candle, name, text)
    return candle


@pytest.mark.parametrize(
    "values",
    [
        {},
        # Every price equal: an empty minute carrying the previous close.
        {
            "open": "10",
            "high": "10",
            "low": "10",
            "close": "10",
            "volume": "0",
            "quote_volume": "0",
        },
        # Open at the low, close at the high: the bounds are inclusive.
        {"open": "9.5", "close": "12.5"},
        {"high": INT64_MAX_E8, "quote_volume": INT64_MAX_E8},
    ],
)
def test_a_consistent_candle_passes(values: dict[str, str]) -> None:
    assert candle_fault(_candle(**values)) is None


@pytest.mark.parametrize(
    ("values", "fault"),
    [
        ({"open": "NaN"}, CandleFault.NOT_A_NUMBER),
        ({"high": "Infinity"}, CandleFault.NOT_A_NUMBER),
        ({"low": "-inf"}, CandleFault.NOT_A_NUMBER),
        ({"close": ""}, CandleFault.NOT_A_NUMBER),
        ({"volume": "1.5.0"}, CandleFault.NOT_A_NUMBER),
        ({"quote_volume": "sNaN"}, CandleFault.NOT_A_NUMBER),
        ({"high": "92233720368.54775808"}, CandleFault.NOT_FIXED_POINT),
        ({"quote_volume": "1e20"}, CandleFault.NOT_FIXED_POINT),
        ({"low": "-92233720368.54775809"}, CandleFault.NOT_FIXED_POINT),
        ({"close": "11.000000001"}, CandleFault.NOT_FIXED_POINT),
        ({"open": "9.49999999"}, CandleFault.OHLC_ORDER),
        ({"open": "12.50000001"}, CandleFault.OHLC_ORDER),
        ({"close": "9.4"}, CandleFault.OHLC_ORDER),
        ({"close": "13"}, CandleFault.OHLC_ORDER),
        # Low above high puts every open outside: the same fault.
        ({"low": "12.6", "open": "12.6", "close": "12.6"}, CandleFault.OHLC_ORDER),
        ({"volume": "-0.00000001"}, CandleFault.NEGATIVE_VOLUME),
        ({"quote_volume": "-1"}, CandleFault.NEGATIVE_VOLUME),
    ],
)
def test_a_faulty_candle_is_refused_with_its_fault(
    values: dict[str, str], fault: CandleFault
) -> None:
    assert candle_fault(_candle(**values)) is fault

"""The check every candle passes before it is stored: numbers, fixed point, OHLC order, volume.

Candles come from Binance's klines (live and over REST) and from our own trade aggregation; a
candle whose low is above its open, or whose volume is negative, would be stored as a fact and
read back by every backtest, so it is refused instead and counted by its fault.
"""

from enum import StrEnum

from finance.market.v1 import market_pb2
from finplat.market.decimals import to_decimal
from finplat.market.fixed import FixedPointError, to_e8

_PRICES = ("open", "high", "low", "close")
_VOLUMES = ("volume", "quote_volume")


class CandleFault(StrEnum):
    """Why a candle is refused; the values are the metric's `reason` labels."""

    NOT_A_NUMBER = "not_a_number"
    """A price or volume that is not a finite decimal (empty, NaN, Infinity, text)."""
    NOT_FIXED_POINT = "not_fixed_point"
    """Beyond a signed 64-bit integer once scaled by 10^8, or more than 8 decimals."""
    OHLC_ORDER = "ohlc_order"
    """Open or close outside [low, high]."""
    NEGATIVE_VOLUME = "negative_volume"
    """A base or quote volume below zero."""


def candle_fault(candle: market_pb2.Candle) -> CandleFault | None:
    """The first fault found in `candle`, or None when it may be stored."""
    scaled: dict[str, int] = {}
    for name in (*_PRICES, *_VOLUMES):
        text = getattr(candle, name)
        # Parsed first on its own, so that a non-number is told apart from a number that
        # fixed point cannot hold (to_e8 refuses both with one error).
        try:
            to_decimal(text)
        except ValueError:
            return CandleFault.NOT_A_NUMBER
        try:
            scaled[name] = to_e8(text)
        except FixedPointError:
            return CandleFault.NOT_FIXED_POINT
    # Compared as scaled integers: exact, as the store will hold them.
    low, high = scaled["low"], scaled["high"]
    if not (low <= scaled["open"] <= high and low <= scaled["close"] <= high):
        return CandleFault.OHLC_ORDER
    if any(scaled[name] < 0 for name in _VOLUMES):
        return CandleFault.NEGATIVE_VOLUME
    return None

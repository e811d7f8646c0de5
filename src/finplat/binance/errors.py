"""Binance's data in a form we cannot read: a frame off the wire, or a file of its archive."""


class BinanceFormatError(Exception):
    """Base of the errors raised while reading anything Binance sends or publishes."""


class WireError(BinanceFormatError):
    """A frame from the exchange could not be turned into a known message."""

    reason = "wire"


class MalformedFrameError(WireError):
    """Not JSON, not an object, or a known message with missing or mistyped fields."""

    reason = "malformed"


class UnknownMessageError(WireError):
    """Valid JSON that is no message we handle (another event type, bookTicker, ...)."""

    reason = "unknown"


class DataError(BinanceFormatError):
    """A market data file is missing or not in a format we read."""

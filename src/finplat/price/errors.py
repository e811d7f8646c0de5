"""The price service's own exceptions; adapters translate third-party errors into these."""


class PriceError(Exception):
    """Base of every error the price service raises on purpose."""


class WireError(PriceError):
    """A frame from the exchange could not be turned into a known message."""

    reason = "wire"


class MalformedFrameError(WireError):
    """Not JSON, not an object, or a known message with missing or mistyped fields."""

    reason = "malformed"


class UnknownMessageError(WireError):
    """Valid JSON that is no message we handle (another event type, bookTicker, ...)."""

    reason = "unknown"


class RestError(PriceError):
    """The REST API failed or answered with an error after the retries ran out."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class FeedError(PriceError):
    """The feed stopped for a reason it cannot recover from (bad settings, closed feed)."""


class DataError(PriceError):
    """A market data file is missing or not in a format we read."""

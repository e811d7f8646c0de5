"""Errors the price service's adapters raise, translated from their client libraries'."""

from enum import StrEnum

from finplat.price.errors import PriceError


class Refusal(StrEnum):
    """Why an item was left out of a batch otherwise written; values are metric labels."""

    INVALID = "invalid"
    """Refused by our checks before the write (for Kafka, by the contract): the store would
    have refused it, or the whole batch with it."""
    STORE = "store"
    """Refused by the store itself, alone (InfluxDB's 400 or 422): a field type conflict."""


class StoreUnavailableError(PriceError):
    """The store did not take the request; retrying later may succeed.

    `written` counts the items at the start of the batch the store did take, so that only the
    rest is retried.
    """

    retriable = True

    def __init__(self, message: str, *, written: int = 0) -> None:
        super().__init__(message)
        self.written = written


class StoreRejectedError(PriceError):
    """The store refused the data itself; retrying the same data would fail again."""

    retriable = False


class RestError(PriceError):
    """Binance's REST API failed or answered with an error after the retries ran out."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class FeedError(PriceError):
    """The feed stopped for a reason it cannot recover from (bad settings, closed feed)."""

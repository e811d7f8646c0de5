"""What a PriceUpdate from Kafka must be before the statistics count it, and why one is not.

A field that passes here can neither corrupt a statistic nor bloat the stored state: symbols
become Prometheus labels and stored rows, price strings are stored and served as received,
event ids are stored in the de-duplication window. Each rejection names one `RejectReason`,
a closed set, so the reason can be a metric label too.
"""

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from finance.market.v1 import market_pb2
from finplat.backtest.errors import InvalidUpdateError
from finplat.market.decimals import PLAIN_DECIMAL
from finplat.market.symbols import is_symbol

# Decimals are checked as the producer checks them (market.decimals.PLAIN_DECIMAL), which
# rules out signs, exponents, NaN, whitespace and underscores, and bounds a value to 40
# digits with exponent -20..0, which keeps every volume sum exact.
# Epoch milliseconds stop being plausible at 1e13 (the year 2286): a larger stamp is in micro-
# or nanoseconds, and as the newest event time it would keep its price "last" for good. 0 is
# the contract's default for an update without an event time; it cannot pin anything.
_MAX_TIMESTAMP_MS = 10**13
# Binance's ids are at most "1m:<open ms>:<event ms>" (30 characters); each one is stored.
_MAX_EVENT_ID_CHARS = 128
# A reason quotes the offending value this far: it is logged and sent as a Kafka header.
_SHOWN_CHARS = 40


class RejectReason(StrEnum):
    """Why a message is dead-lettered instead of counted."""

    UNDECODABLE = "undecodable"
    SYMBOL = "invalid_symbol"
    PRICE = "invalid_price"
    VOLUME = "invalid_volume"
    TIMESTAMP = "invalid_timestamp"
    EVENT_ID = "invalid_event_id"


class RejectedUpdateError(InvalidUpdateError):
    """A decoded update the statistics refuse; `reason` says which rule it broke."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CheckedUpdate:
    """The exact values of an update that passed `check_update`."""

    price: Decimal
    volume: Decimal


def _shown(text: str) -> str:
    """`text` quoted, cut short when long: a reason is a sentence, not a dump."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text)} characters)"


def _decimal(text: str, reason: RejectReason, name: str) -> Decimal:
    if not PLAIN_DECIMAL.fullmatch(text):
        raise RejectedUpdateError(reason, f"{name} is not a plain decimal: {_shown(text)}")
    return Decimal(text)


def check_update(update: market_pb2.PriceUpdate) -> CheckedUpdate:
    """The update's exact price and volume, or `RejectedUpdateError` for its first bad field."""
    if not is_symbol(update.symbol):
        raise RejectedUpdateError(
            RejectReason.SYMBOL,
            f"symbol must be 1-32 upper-case ASCII letters or digits: {_shown(update.symbol)}",
        )
    price = _decimal(update.price, RejectReason.PRICE, "price")
    if not price:  # the pattern has no sign: zero is the one value that is not positive
        raise RejectedUpdateError(RejectReason.PRICE, f"price must be positive: {update.price!r}")
    # An empty volume is the contract's default: an update that carries none adds nothing.
    volume = _decimal(update.volume, RejectReason.VOLUME, "volume") if update.volume else Decimal(0)
    if not 0 <= update.timestamp < _MAX_TIMESTAMP_MS:
        raise RejectedUpdateError(
            RejectReason.TIMESTAMP,
            f"timestamp must be epoch milliseconds below {_MAX_TIMESTAMP_MS}: {update.timestamp}",
        )
    if len(update.event_id) > _MAX_EVENT_ID_CHARS:
        raise RejectedUpdateError(
            RejectReason.EVENT_ID,
            f"event_id is longer than {_MAX_EVENT_ID_CHARS} characters: {_shown(update.event_id)}",
        )
    return CheckedUpdate(price, volume)

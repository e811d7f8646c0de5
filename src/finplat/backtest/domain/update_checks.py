"""What a PriceUpdate from Kafka must be before the statistics count it, and why one is not.

A field that passes here can neither corrupt a statistic nor bloat the stored state: symbols
become Prometheus labels and stored rows, price strings are stored and served as received,
event ids are stored in the de-duplication window. Each rejection names one `RejectReason`,
a closed set, so the reason can be a metric label too.
"""

from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple, Protocol

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


class PriceFields(Protocol):
    """What the checks and the statistics read of an update: a PriceUpdate has it, and so has
    the consumer's flat `finplat.kafka.price_record.PriceRecord`."""

    @property
    def symbol(self) -> str: ...
    @property
    def price(self) -> str: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def volume(self) -> str: ...
    @property
    def kind(self) -> int: ...
    @property
    def event_id(self) -> str: ...


class CheckedUpdate(NamedTuple):
    """The exact values of an update that passed `check_update`."""

    price: Decimal
    volume: Decimal


_ZERO = Decimal(0)
_is_plain = PLAIN_DECIMAL.fullmatch
# What CheckedUpdate(price, volume) runs, without its Python-level call: a third of the cost.
_new_tuple = tuple.__new__


def _shown(text: str) -> str:
    """`text` quoted, cut short when long: a reason is a sentence, not a dump."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text)} characters)"


def _not_plain(reason: RejectReason, name: str, text: str) -> RejectedUpdateError:
    return RejectedUpdateError(reason, f"{name} is not a plain decimal: {_shown(text)}")


def check_update(update: PriceFields) -> CheckedUpdate:
    """The update's exact price and volume, or `RejectedUpdateError` for its first bad field."""
    # Run on every update of the stream: each field is read once, and the valid path does no
    # call it can do without (a reason is looked up only for a rejection, 0.1 us each).
    symbol = update.symbol
    if not is_symbol(symbol):
        raise RejectedUpdateError(
            RejectReason.SYMBOL,
            f"symbol must be 1-32 upper-case ASCII letters or digits: {_shown(symbol)}",
        )
    text = update.price
    if _is_plain(text) is None:
        raise _not_plain(RejectReason.PRICE, "price", text)
    price = Decimal(text)
    if not price:  # the pattern has no sign: zero is the one value that is not positive
        raise RejectedUpdateError(RejectReason.PRICE, f"price must be positive: {text!r}")
    text = update.volume
    if not text:  # the contract's default: an update that carries no volume adds nothing
        volume = _ZERO
    elif _is_plain(text) is None:
        raise _not_plain(RejectReason.VOLUME, "volume", text)
    else:
        volume = Decimal(text)
    timestamp = update.timestamp
    if not 0 <= timestamp < _MAX_TIMESTAMP_MS:
        raise RejectedUpdateError(
            RejectReason.TIMESTAMP,
            f"timestamp must be epoch milliseconds below {_MAX_TIMESTAMP_MS}: {timestamp}",
        )
    event_id = update.event_id
    if len(event_id) > _MAX_EVENT_ID_CHARS:
        raise RejectedUpdateError(
            RejectReason.EVENT_ID,
            f"event_id is longer than {_MAX_EVENT_ID_CHARS} characters: {_shown(event_id)}",
        )
    return _new_tuple(CheckedUpdate, (price, volume))

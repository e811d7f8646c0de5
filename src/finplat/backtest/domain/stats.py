"""Live statistics of the price-updates stream: pure, clock injected, persisted as plain data.

Only updates that pass `update_checks` are counted, so no bad field reaches a statistic, a
metric label or the stored state; the rejected ones are counted per reason. Counts are exact
and survive redelivery (a `DedupWindow` on (symbol, kind, event_id)) and restarts
(`to_state` / `load_state`, written by the consumer with its offsets). Prices and volumes stay
exact decimals: the strings as received for last/min/max, a `Decimal` sum for volume. The
rate window is not persisted: after a restart it describes the new process.

One `StreamStats` holds one Kafka partition's statistics, so that a partition's state can move
to another consumer of the group with its offset; `merge_snapshots` makes the whole stream's
figures of the partitions' ones.
"""

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from typing import Any

from finplat.backtest.domain.dedup import DedupWindow, event_key
from finplat.backtest.domain.update_checks import PriceFields, RejectReason, check_update

Clock = Callable[[], float]
"""Monotonic seconds (`time.monotonic` in production)."""

RATE_WINDOW_S = 60
# `check_update` bounds every value to 40 digits with exponent -20..0: sums stay exact here.
_EXACT = Context(prec=120, traps=[Inexact, Rounded, InvalidOperation])


class RateWindow:
    """Counts per whole second over the last `RATE_WINDOW_S` seconds, the current one included."""

    __slots__ = ("_counts", "_seconds")

    def __init__(self) -> None:
        self._seconds = [-1] * RATE_WINDOW_S
        self._counts = [0] * RATE_WINDOW_S

    def add(self, now_s: float) -> None:
        second = math.floor(now_s)
        slot = second % RATE_WINDOW_S
        if self._seconds[slot] != second:
            self._seconds[slot] = second
            self._counts[slot] = 0
        self._counts[slot] += 1

    def per_second(self, now_s: float) -> float:
        """Events in the window divided by its length."""
        second = math.floor(now_s)
        recent = sum(
            count
            for stamp, count in zip(self._seconds, self._counts, strict=True)
            if second - RATE_WINDOW_S < stamp <= second
        )
        return recent / RATE_WINDOW_S


@dataclass(slots=True)
class _Symbol:
    count: int
    first_event_ms: int
    last_event_ms: int
    last_price: str
    min_price: str
    max_price: str
    volume: Decimal
    min_value: Decimal
    max_value: Decimal
    rate: RateWindow = field(default_factory=RateWindow)


@dataclass(frozen=True, slots=True)
class SymbolSnapshot:
    """Statistics of one symbol at one moment."""

    symbol: str
    count: int
    first_event_ms: int
    last_event_ms: int
    last_price: str
    min_price: str
    max_price: str
    volume: str
    messages_per_second: float


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """Statistics of the whole stream at one moment; symbols ordered by name."""

    total_messages: int
    symbols: tuple[SymbolSnapshot, ...]
    decode_errors: int
    dead_lettered: int
    duplicates: int
    uptime_s: float
    # Messages dead-lettered instead of counted, per `RejectReason` value; reasons never seen
    # are absent.
    rejected: Mapping[str, int] = field(default_factory=dict)


def _row(s: _Symbol) -> tuple[int, int, int, str, str, str, str]:
    volume = format(s.volume, "f")
    return (s.count, s.first_event_ms, s.last_event_ms, s.last_price, s.min_price, s.max_price,
            volume)  # fmt: skip


class StreamStats:
    """Counts distinct updates per symbol; not thread-safe (the consumer holds a lock)."""

    def __init__(self, clock: Clock, dedup_capacity: int) -> None:
        self._clock = clock
        self._started = clock()
        self.dedup = DedupWindow(dedup_capacity)
        self._symbols: dict[str, _Symbol] = {}
        self.total = 0
        self.decode_errors = 0
        self.dead_lettered = 0
        self.duplicates = 0
        self.rejected: Counter[str] = Counter()

    def reject(self, reason: RejectReason) -> None:
        """Count one message that will be dead-lettered instead of counted."""
        self.decode_errors += 1
        self.rejected[reason.value] += 1

    def observe(self, update: PriceFields) -> bool:
        """Count one update; False for a duplicate.

        An invalid update raises `RejectedUpdateError` before any change, its key included.
        """
        # Once per update of the whole stream: each field is read once, into a local, and the
        # counting is inline, not a call.
        price, volume = check_update(update)
        symbol, event_id = update.symbol, update.event_id
        # Without an event id nothing identifies a redelivery: such updates are always counted.
        if event_id and not self.dedup.add(event_key(symbol, update.kind, event_id)):
            self.duplicates += 1
            return False
        self.total += 1
        text, ts = update.price, update.timestamp
        state = self._symbols.get(symbol)
        if state is None:
            state = _Symbol(0, ts, ts, text, text, text, Decimal(0), price, price)
            self._symbols[symbol] = state
        state.count += 1
        state.first_event_ms = min(state.first_event_ms, ts)
        if ts >= state.last_event_ms:
            # The latest price is the one with the latest event time, not the latest arrival.
            state.last_event_ms = ts
            state.last_price = text
        if price < state.min_value:
            state.min_value, state.min_price = price, text
        elif price > state.max_value:  # min <= max: a new minimum is no new maximum
            state.max_value, state.max_price = price, text
        state.volume = _EXACT.add(state.volume, volume)
        state.rate.add(self._clock())
        return True

    def snapshot(self) -> StatsSnapshot:
        """A consistent copy for the API and the log."""
        now = self._clock()
        symbols = tuple(
            SymbolSnapshot(
                symbol=name,
                count=s.count,
                first_event_ms=s.first_event_ms,
                last_event_ms=s.last_event_ms,
                last_price=s.last_price,
                min_price=s.min_price,
                max_price=s.max_price,
                volume=format(s.volume, "f"),
                messages_per_second=s.rate.per_second(now),
            )
            for name, s in sorted(self._symbols.items())
        )
        return StatsSnapshot(
            total_messages=self.total,
            symbols=symbols,
            decode_errors=self.decode_errors,
            dead_lettered=self.dead_lettered,
            duplicates=self.duplicates,
            uptime_s=now - self._started,
            rejected=dict(self.rejected),
        )

    def to_state(self) -> dict[str, Any]:
        """Counters and per-symbol values as JSON-able data (decimals as strings)."""
        return {
            "total": self.total,
            "decode_errors": self.decode_errors,
            "dead_lettered": self.dead_lettered,
            "duplicates": self.duplicates,
            "rejected": dict(self.rejected),
            "symbols": {name: [*_row(s)] for name, s in self._symbols.items()},
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace counters and per-symbol values with a `to_state` result."""
        self.total = int(state["total"])
        self.decode_errors = int(state["decode_errors"])
        self.dead_lettered = int(state["dead_lettered"])
        self.duplicates = int(state["duplicates"])
        # States saved before rejections were told apart by reason have none.
        self.rejected = Counter({k: int(v) for k, v in state.get("rejected", {}).items()})
        self._symbols = {}
        for name, row in state["symbols"].items():
            count, first_ms, last_ms, last_price, min_price, max_price, volume = row
            self._symbols[name] = _Symbol(
                int(count), int(first_ms), int(last_ms), last_price, min_price, max_price,
                Decimal(volume), Decimal(min_price), Decimal(max_price),
            )  # fmt: skip


def merge_snapshots(parts: Iterable[StatsSnapshot]) -> StatsSnapshot:
    """The whole stream's statistics from its partitions' (nothing: an empty stream).

    Counts add up. A symbol's updates all land in one partition (the key is the symbol) until
    partitions are added to the topic, which moves keys: then it has figures in two, merged as
    one would have counted them: earliest first event, the price of the latest event, the
    extreme prices, the volumes summed exactly.
    """
    parts = list(parts)
    symbols: dict[str, SymbolSnapshot] = {}
    rejected: Counter[str] = Counter()
    for part in parts:
        rejected.update(part.rejected)
        for entry in part.symbols:
            seen = symbols.get(entry.symbol)
            symbols[entry.symbol] = entry if seen is None else _merged_symbol(seen, entry)
    return StatsSnapshot(
        total_messages=sum(p.total_messages for p in parts),
        symbols=tuple(symbols[name] for name in sorted(symbols)),
        decode_errors=sum(p.decode_errors for p in parts),
        dead_lettered=sum(p.dead_lettered for p in parts),
        duplicates=sum(p.duplicates for p in parts),
        uptime_s=max((p.uptime_s for p in parts), default=0.0),
        rejected=dict(rejected),
    )


def _merged_symbol(a: SymbolSnapshot, b: SymbolSnapshot) -> SymbolSnapshot:
    latest = b if b.last_event_ms >= a.last_event_ms else a
    return SymbolSnapshot(
        symbol=a.symbol,
        count=a.count + b.count,
        first_event_ms=min(a.first_event_ms, b.first_event_ms),
        last_event_ms=latest.last_event_ms,
        last_price=latest.last_price,
        min_price=min(a.min_price, b.min_price, key=Decimal),
        max_price=max(a.max_price, b.max_price, key=Decimal),
        volume=format(_EXACT.add(Decimal(a.volume), Decimal(b.volume)), "f"),
        messages_per_second=a.messages_per_second + b.messages_per_second,
    )

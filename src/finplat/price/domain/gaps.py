"""Gaps in a kline stream, found from the klines themselves rather than from a clock.

Per (symbol, interval) we keep `covered_until`: the open time of the first candle not yet
accounted for. A closed kline at open time t accounts for everything up to the next bucket;
any kline (closed or forming) opening after `covered_until` reveals missing candles in
[covered_until, t), which the feed backfills over REST. A kline older than `covered_until`
comes after its candle was emitted or handed to a backfill (an overlapping connection, a
frame out of order): it is reported as late so the candle is not emitted twice.
Needing no clock, this works live and against replayed history alike; it covers reconnect
gaps and skips within one connection.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from finplat.market.intervals import parse_interval


@dataclass(frozen=True, slots=True)
class Gap:
    """Candles with open time in [start_ms, end_ms) are missing."""

    symbol: str
    interval: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class KlineCheck:
    """The verdict on one kline: a gap it reveals, and whether its candle is late."""

    gap: Gap | None
    late: bool


class GapTracker:
    """Tracks how far each (symbol, interval) kline stream is accounted for."""

    def __init__(self, covered_until: Mapping[tuple[str, str], int] | None = None) -> None:
        """`covered_until` per (symbol, interval) resumes streams accounted for before this
        process started (read from the candle store), so the first kline after a restart
        reveals the candles missed while the service was down. A stream whose first kline
        opens before its resume point (the store is ahead of the feed: a replay started over)
        starts afresh instead, so its candles are not taken for late ones."""
        self._covered_until: dict[tuple[str, str], int] = dict(covered_until or {})
        self._resumed = set(self._covered_until)
        self.gaps = 0

    def observe(self, symbol: str, interval: str, open_time: int, closed: bool) -> KlineCheck:
        """Account for one kline event."""
        spec = parse_interval(interval)
        key = (symbol, interval)
        covered = self._covered_until.get(key)
        reach = spec.next_start(open_time) if closed else open_time
        if key in self._resumed:
            self._resumed.discard(key)
            if covered is not None and open_time < covered:
                covered = None
        if covered is None:
            self._covered_until[key] = reach
            return KlineCheck(None, late=False)
        if open_time < covered:
            return KlineCheck(None, late=True)
        gap = None
        if open_time > covered:
            gap = Gap(symbol, interval, covered, open_time)
            self.gaps += 1
        self._covered_until[key] = max(reach, covered)
        return KlineCheck(gap, late=False)

"""The replayed market: one clock, recorded events released as it passes them, REST history.

Market time starts at `start_ms` (default: once every symbol's klines have begun) when the
first client subscribes, and runs at `speed` times real time; with speed 0 it jumps from
event to event as fast as the slowest client reads. Every client sees the same events at the
same market time, as on the real exchange, so two overlapping connections get identical
frames and a disconnected client misses what passed meanwhile.

* Klines: at each 1m candle's close a closed kline frame (`x: true`); coarser intervals are
  aggregated from the 1m candles and pushed when their last minute closes. Klines before
  `start_ms` are history, served over REST only.
* Trades: frames at their recorded time. Trades from another period than the klines (the
  2017 file) are replayed from market start on, with their original timestamps.
* Looping: a source that runs out starts again, its times shifted by its span rounded up to
  whole days (and trade ids by their count), so times and ids keep increasing.
"""

import asyncio
import functools
import heapq
import logging
from pathlib import Path
from typing import Protocol

from finance.market.v1 import market_pb2
from finplat.binance.archive import KlineTable
from finplat.core.clock import Clock
from finplat.market.aggregate import aggregate
from finplat.market.intervals import MINUTE_MS, IntervalSpec, parse_interval
from finplat.replay.sources import kline_events, loop_span, trade_events

logger = logging.getLogger(__name__)


class Listener(Protocol):
    """A client connection as the market sees it."""

    def wants(self, stream: str) -> bool: ...

    async def deliver(self, stream: str, payload: bytes, *, wait: bool) -> None: ...


class Market:
    """Sources of one replay, merged on the market clock and broadcast to listeners."""

    def __init__(
        self,
        tables: dict[str, KlineTable],
        trade_files: dict[str, list[Path]],
        *,
        speed: float,
        loop: bool,
        kline_intervals: tuple[str, ...],
        clock: Clock,
        start_ms: int | None = None,
    ) -> None:
        self.tables = tables
        self._trade_files = trade_files
        self._speed = speed
        self._loop = loop
        self._intervals = [parse_interval(code) for code in kline_intervals]
        self._clock = clock
        firsts = [table.open_times[0] for table in tables.values() if len(table)]
        self.start_ms = start_ms if start_ms is not None else max(firsts, default=0)
        self.listeners: set[Listener] = set()
        self._has_listeners = asyncio.Event()
        self.events_sent = 0
        self._started = asyncio.Event()
        self._started_at = 0.0
        self._fast_now = self.start_ms
        # Loops begun per symbol's klines, for REST to map shifted times back to the data.
        self._kline_loops: dict[str, int] = {}

    def add_listener(self, listener: Listener) -> None:
        self.listeners.add(listener)
        self._has_listeners.set()

    def remove_listener(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        if not self.listeners:
            self._has_listeners.clear()

    def start(self) -> None:
        """Start the clock (first subscriber); later calls do nothing."""
        if not self._started.is_set():
            self._started_at = self._clock.monotonic()
            self._started.set()

    def now_ms(self) -> int:
        """Market time, epoch ms."""
        if not self._started.is_set():
            return self.start_ms
        if self._speed == 0:
            return self._fast_now
        return self.start_ms + int(
            (self._clock.monotonic() - self._started_at) * self._speed * 1000
        )

    async def run(self) -> None:
        """Release events as the clock passes them, until the data ends (never, if looping)."""
        await self._started.wait()
        sources = [
            kline_events(i, table, self._intervals, self.start_ms, self._loop, self._kline_loops)
            for i, table in enumerate(self.tables.values())
        ]
        sources += [
            trade_events(
                len(sources) + i,
                symbol,
                paths,
                self.start_ms,
                functools.partial(self._trade_offset, symbol),
                self._loop,
            )
            for i, (symbol, paths) in enumerate(self._trade_files.items())
        ]
        for market_ms, _, _, stream, payload in heapq.merge(*sources):
            if self._speed > 0:
                wait_s = (market_ms - self.now_ms()) / self._speed / 1000
                if wait_s > 0:
                    await self._clock.sleep(wait_s)
            else:
                # As fast as the slowest client reads: with no client, that is not at all.
                await self._has_listeners.wait()
                self._fast_now = max(self._fast_now, market_ms)
            for listener in list(self.listeners):
                if listener.wants(stream):
                    await listener.deliver(stream, payload, wait=self._speed == 0)
            self.events_sent += 1
            if self.events_sent % 256 == 0:
                await asyncio.sleep(0)  # let clients and the HTTP side run between bursts
        logger.info("replay data exhausted", extra={"events": self.events_sent})

    def _trade_offset(self, symbol: str, first_trade_ms: int) -> int:
        """0 for trades within the klines' period; else what moves them to market start."""
        table = self.tables.get(symbol)
        if table and table.open_times[0] <= first_trade_ms < table.open_times[-1] + MINUTE_MS:
            return 0
        return self.start_ms - first_trade_ms

    def closed_klines(
        self, symbol: str, spec: IntervalSpec, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[market_pb2.Candle]:
        """Binance `/api/v3/klines` over the data: closed candles, open time in range."""
        now = self.now_ms()
        stop = now if end_ms is None else min(now, end_ms + 1)
        if start_ms is not None:
            lo = spec.start(start_ms)
            hi = min(stop, _advance(spec, lo, limit + 1))
        else:
            hi = stop
            lo = _advance(spec, spec.start(hi), -limit)
        minutes = self._minutes(symbol, lo, hi, now)
        candles = minutes if spec.code == "1m" else aggregate(minutes, spec)
        picked = [
            c
            for c in candles
            if c.closed
            and c.close_time < now
            and (start_ms is None or c.open_time >= start_ms)
            and (end_ms is None or c.open_time <= end_ms)
        ]
        return picked[:limit] if start_ms is not None else picked[-limit:]

    def _minutes(self, symbol: str, lo: int, hi: int, now: int) -> list[market_pb2.Candle]:
        table = self.tables.get(symbol)
        if table is None or not len(table):
            return []
        out = table.candles(lo, hi)
        span = self._span(table)
        region = (self.start_ms, table.open_times[-1] + MINUTE_MS)
        for loop in range(1, self._kline_loops.get(symbol, 0) + 1):
            shift = loop * span
            a, b = max(lo, region[0] + shift), min(hi, region[1] + shift)
            for candle in table.candles(a - shift, b - shift) if a < b else []:
                candle.open_time += shift
                candle.close_time += shift
                out.append(candle)
        return [candle for candle in out if candle.close_time < now]

    def shift_of(self, symbol: str, open_ms: int) -> int:
        """How far a looped kline opening at `open_ms` is shifted from its recorded time."""
        table = self.tables[symbol]
        if not len(table) or open_ms < table.open_times[-1] + MINUTE_MS:
            return 0
        span = self._span(table)
        return (open_ms - self.start_ms) // span * span

    def _span(self, table: KlineTable) -> int:
        return loop_span(table, self.start_ms)


def _advance(spec: IntervalSpec, open_ms: int, steps: int) -> int:
    """The bucket start `steps` buckets after (or before, if negative) `open_ms`."""
    if spec.fixed_ms is not None:
        return open_ms + steps * spec.fixed_ms
    for _ in range(abs(steps)):
        open_ms = spec.next_start(open_ms) if steps > 0 else spec.start(open_ms - 1)
    return open_ms

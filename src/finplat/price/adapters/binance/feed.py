"""The Binance feed: normalised, de-duplicated price updates and candles as an async iterator.

    async with BinanceRest(settings.rest) as rest, BinanceFeed(settings, rest=rest) as feed:
        async for item in feed:          # market_pb2.PriceUpdate | market_pb2.Candle
            ...

Hand-over: a bounded queue between the connection readers and the consumer. Readers never
wait on price updates: when the queue is full the update is dropped and counted, so a slow
sink cannot stall the sockets into Binance's slow-consumer disconnect. Candles (from kline
events and from gap backfills) are rare and must not be lost, so readers wait for room.

Each kline event yields a PriceUpdate and a Candle (`closed` from Binance's `x`). After a
gap (reconnect, stall) the first kline reveals the missing range (see domain/gaps.py) and the
candles are fetched over REST in the background. Malformed, unknown, duplicate and
out-of-order frames are logged and counted in `stats`, never raised.
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from finance.market.v1 import market_pb2
from finplat.binance.errors import BinanceFormatError, MalformedFrameError, UnknownMessageError
from finplat.binance.streams import build_streams, partition
from finplat.binance.wire import (
    ControlError,
    ControlReply,
    Frame,
    Kline,
    ServerShutdown,
    decode_frame,
)
from finplat.core.clock import Clock, SystemClock
from finplat.market.intervals import parse_interval
from finplat.price.adapters.binance.backfill import KlineSource, backfill
from finplat.price.adapters.binance.connection import StreamGroup
from finplat.price.adapters.binance.limits import SlidingWindowLimiter
from finplat.price.adapters.binance.settings import FeedSettings
from finplat.price.adapters.errors import FeedError
from finplat.price.domain.dedup import Deduplicator, Verdict
from finplat.price.domain.gaps import Gap, GapTracker
from finplat.price.errors import PriceError

logger = logging.getLogger(__name__)

# One socket read can hold thousands of frames (compressed ones are a few dozen bytes), and the
# reader decodes them all in one go; it yields this often so that the consumer drains the
# hand-over queue before it overflows, when the CPU would keep up.
_YIELD_EVERY_FRAMES = 256

FeedItem = market_pb2.PriceUpdate | market_pb2.Candle


class _Ended:
    """Queued behind the last items when the feed's runner ends."""


_ENDED = _Ended()


@dataclass(slots=True)
class FeedStats:
    """Counters since the feed started (connection counters live on `feed.groups`)."""

    frames: int = 0
    updates: int = 0
    candles: int = 0
    malformed: int = 0
    unknown: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    late_candles: int = 0
    dropped_updates: int = 0
    gaps: int = 0
    backfilled_candles: int = 0
    backfill_failures: int = 0


class BinanceFeed:
    """Streams `settings.owned` x `settings.stream_kinds` (this shard's symbols); iterate it
    inside `async with`."""

    def __init__(
        self,
        settings: FeedSettings,
        *,
        rest: KlineSource | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        resume: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """`resume`: per (symbol, interval), the open time of the first candle the store lacks;
        a gap from there to the first live kline is backfilled."""
        self.settings = settings
        self._rest = rest
        self._clock = clock or SystemClock()
        rng = rng or random.Random()
        self._queue: asyncio.Queue[FeedItem | _Ended] = asyncio.Queue(settings.queue_size)
        self._service_name = settings.service_name
        self._dedup = Deduplicator(settings.dedup_window, settings.dedup_max_keys)
        self._gaps = GapTracker(resume)
        self._runner: asyncio.Task[None] | None = None
        self._task_group: asyncio.TaskGroup | None = None
        self.stats = FeedStats()
        limiter = SlidingWindowLimiter(
            settings.max_connections_per_window, settings.connection_window_s, self._clock
        )
        groups = partition(
            build_streams(settings.owned, settings.stream_kinds),
            settings.max_streams_per_connection,
        )
        self.groups = [
            StreamGroup(
                f"binance-{i}",
                streams,
                settings,
                on_frame=self.handle_frame,
                connection_limiter=limiter,
                clock=self._clock,
                rng=rng,
            )
            for i, streams in enumerate(groups)
        ]

    async def __aenter__(self) -> Self:
        self._runner = asyncio.create_task(self._run(), name="binance-feed")
        self._runner.add_done_callback(self._wake_reader)
        return self

    def _wake_reader(self, _: asyncio.Task[None]) -> None:
        # A full queue needs no wake-up: its reader finds the runner done once it is drained.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_ENDED)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is None:
            return
        self._runner.cancel()
        try:
            await self._runner
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("feed stopped with an error")

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> FeedItem:
        # One wait on the queue per item, woken by the next item or, once the runner has
        # ended, by `_ENDED` behind the items it left. (A task and `asyncio.wait` on the queue
        # and the runner per item cost more than the item's whole way through the pipeline,
        # when items come one at a time.)
        if not self._queue.empty():
            item = self._queue.get_nowait()
        elif self._runner is None:
            raise FeedError("iterate the feed inside `async with`")
        elif self._runner.done():
            item = _ENDED
        else:
            item = await self._queue.get()
        if not isinstance(item, _Ended):
            return item
        assert self._runner is not None, "only a started feed ends"
        if self._runner.cancelled():
            raise StopAsyncIteration
        raise FeedError("the feed stopped") from self._runner.exception()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as task_group:
            self._task_group = task_group
            for group in self.groups:
                task_group.create_task(group.run(), name=group.name)

    async def handle_frame(self, raw: bytes) -> Frame | None:
        """Decode, de-duplicate, normalise and hand over one frame; return control frames.

        The stream groups call it with every frame they receive. Whatever the bytes, it raises
        nothing: a frame not handed over or returned is counted once in `stats`.
        """
        stats = self.stats
        stats.frames += 1
        receive_ms = self._clock.time_ms()
        try:
            frame = decode_frame(raw)
            if isinstance(frame, ControlReply | ControlError | ServerShutdown):
                return frame
            key, number = frame.sequence()
            verdict = self._dedup.check(key, number)
            if verdict is Verdict.DUPLICATE:
                stats.duplicates += 1
                return None
            if verdict is Verdict.OUT_OF_ORDER:
                stats.out_of_order += 1
                _log_counted("out-of-order event", stats.out_of_order, raw)
            update = frame.parse_to_price_update(self._service_name, receive_ms)
            candle = frame.parse_to_candle() if isinstance(frame, Kline) else None
        except MalformedFrameError as exc:
            stats.malformed += 1
            _log_counted(f"malformed frame: {exc}", stats.malformed, raw)
            return None
        except UnknownMessageError as exc:
            stats.unknown += 1
            _log_counted(f"unknown message: {exc}", stats.unknown, raw)
            return None
        try:
            self._queue.put_nowait(update)
            stats.updates += 1
        except asyncio.QueueFull:
            stats.dropped_updates += 1
            _log_counted("queue full, price update dropped", stats.dropped_updates, raw)
        if candle is not None and isinstance(frame, Kline):
            await self._on_candle(frame, candle)
        if stats.frames % _YIELD_EVERY_FRAMES == 0:
            await asyncio.sleep(0)
        return None

    async def _on_candle(self, event: Kline, candle: market_pb2.Candle) -> None:
        k = event.kline
        check = self._gaps.observe(k.symbol, k.interval, k.open_time, k.closed)
        if check.gap is not None:
            self.stats.gaps += 1
            self._start_backfill(check.gap)
        if check.late:
            self.stats.late_candles += 1
            return
        await self._queue.put(candle)
        self.stats.candles += 1

    def _start_backfill(self, gap: Gap) -> None:
        logger.warning(
            "kline gap detected",
            extra={
                "symbol": gap.symbol,
                "interval": gap.interval,
                "start_ms": gap.start_ms,
                "end_ms": gap.end_ms,
            },
        )
        if self._rest is None or not self.settings.backfill_gaps or self._task_group is None:
            return
        self._task_group.create_task(self._backfill(gap), name=f"backfill-{gap.symbol}")

    async def _backfill(self, gap: Gap) -> None:
        assert self._rest is not None  # checked by _start_backfill
        # A month has no fixed length: 31 days bounds it from above.
        candle_ms = parse_interval(gap.interval).fixed_ms or 31 * 86_400_000
        longest_ms = self.settings.backfill_max_candles * candle_ms
        try:
            await backfill(
                self._rest,
                gap.symbol,
                gap.interval,
                max(gap.start_ms, gap.end_ms - longest_ms),
                gap.end_ms,
                self._put_backfilled,
                page_limit=self.settings.rest.klines_page_limit,
            )
        except (PriceError, BinanceFormatError):
            self.stats.backfill_failures += 1
            logger.exception(
                "backfill failed", extra={"symbol": gap.symbol, "start_ms": gap.start_ms}
            )

    async def _put_backfilled(self, candles: Sequence[market_pb2.Candle]) -> None:
        for candle in candles:
            await self._queue.put(candle)
        self.stats.backfilled_candles += len(candles)


def _log_counted(message: str, count: int, raw: bytes) -> None:
    """Log the first ten occurrences, then every thousandth, so bad input cannot flood logs."""
    if count <= 10 or count % 1000 == 0:
        logger.warning(message, extra={"count": count, "frame": raw[:200].decode(errors="replace")})

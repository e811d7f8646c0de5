"""Historical klines over REST, page by page, handed to a callback with progress reports."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from finance.market.v1 import market_pb2
from finplat.market.intervals import parse_interval

logger = logging.getLogger(__name__)


class KlineSource(Protocol):
    """What backfill needs of the REST client (`BinanceRest` has it; tests pass fakes)."""

    async def klines(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
        now_ms: int | None = None,
    ) -> list[market_pb2.Candle]: ...


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """Where a backfill stands; `fraction` feeds a progress bar."""

    symbol: str
    interval: str
    start_ms: int
    end_ms: int
    cursor_ms: int
    candles: int
    pages: int

    @property
    def fraction(self) -> float:
        span = self.end_ms - self.start_ms
        return 1.0 if span <= 0 else min(1.0, (self.cursor_ms - self.start_ms) / span)


async def backfill(
    source: KlineSource,
    symbol: str,
    interval: str,
    start_ms: int,
    end_ms: int,
    on_batch: Callable[[Sequence[market_pb2.Candle]], Awaitable[None]],
    on_progress: Callable[[BackfillProgress], None] | None = None,
    page_limit: int = 1000,
) -> int:
    """Fetch every candle with open time in [start_ms, end_ms) and pass each page on.

    Returns the number of candles. Pages are requested in time order; the next page starts
    after the last candle received, so a page cut short by the exchange loses nothing.
    """
    spec = parse_interval(interval)
    cursor, total, pages = spec.start(start_ms), 0, 0
    if cursor < start_ms:
        cursor = spec.next_start(cursor)
    while cursor < end_ms:
        batch = await source.klines(
            symbol, interval, start_ms=cursor, end_ms=end_ms - 1, limit=page_limit
        )
        pages += 1
        batch = [candle for candle in batch if cursor <= candle.open_time < end_ms]
        if batch:
            await on_batch(batch)
            total += len(batch)
            cursor = spec.next_start(batch[-1].open_time)
        else:
            cursor = end_ms  # nothing more in range: the exchange has no older/newer data
        if on_progress is not None:
            on_progress(
                BackfillProgress(
                    symbol, interval, start_ms, end_ms, min(cursor, end_ms), total, pages
                )
            )
    logger.info(
        "backfill done",
        extra={"symbol": symbol, "interval": interval, "candles": total, "pages": pages},
    )
    return total

"""GetCandles: validate the request, read stored candles, aggregate when the interval was not
stored directly, keep or drop the forming candle, and return the newest `limit`."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from finance.market.v1 import market_pb2, price_service_pb2
from finplat.market.aggregate import aggregate
from finplat.market.intervals import INTERVALS, IntervalSpec, parse_interval

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
BASE_INTERVAL = INTERVALS["1m"]


class InvalidCandleRequestError(ValueError):
    """The request cannot be answered as asked (maps to INVALID_ARGUMENT)."""


class CandleStore(Protocol):
    """What GetCandles needs of the candle store."""

    async def last_open_time(self, symbol: str, interval: IntervalSpec) -> int | None:
        """Open time of the newest stored candle."""
        ...

    async def candles(
        self, symbol: str, interval: IntervalSpec, start_ms: int, stop_ms: int
    ) -> list[market_pb2.Candle]:
        """Stored candles opening in [start_ms, stop_ms), ascending."""
        ...


@dataclass(frozen=True)
class CandleRequest:
    """A validated GetCandles request."""

    symbol: str
    interval: IntervalSpec
    start_ms: int | None
    end_ms: int | None
    limit: int
    include_forming: bool


def validate(request: price_service_pb2.GetCandlesRequest) -> CandleRequest:
    """Check every field, with a message that names the one at fault."""
    symbol = request.symbol.strip().upper()
    if not symbol:
        raise InvalidCandleRequestError("symbol is required")
    try:
        interval = parse_interval(request.interval)
    except ValueError as exc:
        raise InvalidCandleRequestError(str(exc)) from exc
    limit = request.limit or DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidCandleRequestError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    start = request.start_time.ToMilliseconds() if request.HasField("start_time") else None
    end = request.end_time.ToMilliseconds() if request.HasField("end_time") else None
    if start is not None and end is not None and start >= end:
        raise InvalidCandleRequestError("start_time must be before end_time")
    return CandleRequest(symbol, interval, start, end, limit, request.include_forming)


def months_back(open_ms: int, count: int) -> int:
    """Open time of the calendar month `count` months before the one opening at `open_ms`."""
    moment = datetime.fromtimestamp(open_ms / 1000, UTC)
    index = moment.year * 12 + moment.month - 1 - count
    return int(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp()) * 1000


def lookback_start(interval: IntervalSpec, last_open_ms: int, count: int) -> int:
    """Open time of the bucket `count - 1` buckets before the one holding `last_open_ms`."""
    newest = interval.start(last_open_ms)
    if interval.fixed_ms is None:
        return months_back(newest, count - 1)
    return newest - (count - 1) * interval.fixed_ms


async def query_candles(
    store: CandleStore,
    request: CandleRequest,
    stored_intervals: Collection[str],
    now_ms: int,
) -> list[market_pb2.Candle]:
    """The candles a GetCandles request asks for, oldest first."""
    interval = request.interval
    direct = interval.code in stored_intervals
    source = interval if direct else BASE_INTERVAL
    end = request.end_ms if request.end_ms is not None else now_ms + 1
    start = request.start_ms
    if start is None:
        # "The last N candles": counted back from the newest stored one, not from the clock,
        # so replayed history is served like live data.
        last = await store.last_open_time(request.symbol, source)
        if last is None:
            return []
        start = lookback_start(interval, min(last, end - 1), request.limit + 1)
    # Whole buckets are read so that the first and last coarse candles are not cut short.
    rows = await store.candles(
        request.symbol,
        source,
        interval.start(start),
        interval.next_start(interval.start(end - 1)),
    )
    candles = rows if direct else aggregate(rows, interval)
    kept = [
        candle
        for candle in candles
        if start <= candle.open_time < end and (candle.closed or request.include_forming)
    ]
    return kept[-request.limit :]

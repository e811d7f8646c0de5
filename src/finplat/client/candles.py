"""Every candle of a range from the price service, paged through GetCandles.

GetCandles answers at most 5,000 candles, the most recent of its range, so a long range is
asked for in windows of at most that many intervals, oldest first.
"""

from collections.abc import Callable, Iterator

from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc
from finplat.market.intervals import parse_interval

MAX_PAGE = 5000
Metadata = tuple[tuple[str, str], ...]


def windows(interval: str, start_ms: int, end_ms: int, page: int) -> Iterator[tuple[int, int]]:
    """[start, end) windows of at most `page` candles each, covering [start_ms, end_ms)."""
    step = parse_interval(interval).fixed_ms
    # A calendar month has no fixed length, but `page` of them cover any real range.
    span = end_ms - start_ms if step is None else step * page
    window_start = start_ms
    while window_start < end_ms:
        window_end = min(end_ms, window_start + span)
        yield window_start, window_end
        window_start = window_end


def candle_request(
    symbol: str, interval: str, window_start: int, window_end: int, page: int
) -> price_service_pb2.GetCandlesRequest:
    """GetCandles for the candles opening in [window_start, window_end), at most `page`."""
    request = price_service_pb2.GetCandlesRequest(symbol=symbol, interval=interval, limit=page)
    request.start_time.FromMilliseconds(window_start)
    request.end_time.FromMilliseconds(window_end)
    return request


async def fetch_candles(
    stub: "price_service_pb2_grpc.PriceServiceAsyncStub",
    symbol: str,
    interval: str,
    start_ms: int,
    end_ms: int,
    *,
    page: int = MAX_PAGE,
    timeout_s: float = 30.0,
    metadata: Metadata = (),
    on_page: Callable[[int], None] | None = None,
) -> list[market_pb2.Candle]:
    """Closed candles opening in [start_ms, end_ms), ascending; `on_page` hears how many each
    page brought. gRPC errors are raised as they come (NOT_FOUND: no such symbol)."""
    candles: list[market_pb2.Candle] = []
    for window_start, window_end in windows(interval, start_ms, end_ms, page):
        request = candle_request(symbol, interval, window_start, window_end, page)
        response = await stub.GetCandles(request, timeout=timeout_s, metadata=metadata)
        closed = [candle for candle in response.candles if candle.closed]
        candles.extend(closed)
        if on_page is not None:
            on_page(len(closed))
    return candles

"""GetCandles planning: validation, direct reads, aggregation, forming candles, limits."""

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from finance.market.v1 import market_pb2, price_service_pb2
from finplat.market.intervals import INTERVALS, IntervalSpec
from finplat.price.service.candle_query import (
    InvalidCandleRequestError,
    lookback_start,
    query_candles,
    validate,
)

T0 = 1_727_740_800_000  # 2024-10-01T00:00:00Z
MINUTE = 60_000


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _minute(
    index: int, o: str, h: str, lo: str, c: str, v: str, closed: bool = True
) -> market_pb2.Candle:
    return market_pb2.Candle(
        symbol="BTCUSDT",
        interval=market_pb2.INTERVAL_1M,
        open_time=T0 + index * MINUTE,
        close_time=T0 + (index + 1) * MINUTE - 1,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
        quote_volume="",
        trade_count=index + 1,
        closed=closed,
    )


class FakeCandleStore:
    """Holds candles in memory and serves them like the InfluxDB adapter."""

    def __init__(self, candles: list[market_pb2.Candle]) -> None:
        self.rows = candles
        self.reads: list[tuple[str, int, int]] = []

    async def last_open_time(self, symbol: str, interval: IntervalSpec) -> int | None:
        return max((c.open_time for c in self.rows), default=None)

    async def candles(
        self, symbol: str, interval: IntervalSpec, start_ms: int, stop_ms: int
    ) -> list[market_pb2.Candle]:
        self.reads.append((interval.code, start_ms, stop_ms))
        return [c for c in self.rows if start_ms <= c.open_time < stop_ms]


def _request(**fields: object) -> price_service_pb2.GetCandlesRequest:
    return price_service_pb2.GetCandlesRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"interval": "1m"}, "symbol is required"),
        ({"symbol": "BTCUSDT", "interval": "2m"}, "unknown interval '2m'"),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": 5001}, "limit must be between"),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": -1}, "limit must be between"),
        (
            {
                "symbol": "BTCUSDT",
                "interval": "1m",
                "start_time": Timestamp(seconds=200),
                "end_time": Timestamp(seconds=100),
            },
            "start_time must be before end_time",
        ),
    ],
)
def test_invalid_requests_name_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidCandleRequestError, match=message):
        validate(_request(**fields))


def test_defaults() -> None:
    request = validate(_request(symbol="btcusdt", interval="1h"))

    assert (request.symbol, request.interval.code, request.limit) == ("BTCUSDT", "1h", 500)
    assert (request.start_ms, request.end_ms, request.include_forming) == (None, None, False)


@pytest.mark.parametrize(
    ("code", "last", "count", "expected"),
    [
        ("1m", "2024-10-01T10:05:30", 3, "2024-10-01T10:03:00"),
        ("1h", "2024-10-01T10:05:00", 1, "2024-10-01T10:00:00"),
        ("1w", "2024-10-03T00:00:00", 2, "2024-09-23T00:00:00"),
        ("1M", "2024-03-15T00:00:00", 3, "2024-01-01T00:00:00"),
        ("1M", "2024-01-15T00:00:00", 2, "2023-12-01T00:00:00"),
    ],
)
def test_lookback_start(code: str, last: str, count: int, expected: str) -> None:
    assert lookback_start(INTERVALS[code], _ms(last), count) == _ms(expected)


@pytest.mark.asyncio
async def test_stored_interval_read_directly_without_forming_and_limited() -> None:
    rows = [_minute(i, "1", "2", "0.5", "1.5", "1") for i in range(5)]
    rows.append(_minute(5, "1", "2", "0.5", "1.5", "1", closed=False))
    store = FakeCandleStore(rows)
    request = validate(_request(symbol="BTCUSDT", interval="1m", limit=3))

    candles = await query_candles(store, request, {"1m"}, now_ms=T0 + 10 * MINUTE)

    assert [c.open_time for c in candles] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]


@pytest.mark.asyncio
async def test_forming_candle_included_when_asked() -> None:
    rows = [_minute(0, "1", "2", "0.5", "1.5", "1"), _minute(1, "1", "2", "0.5", "1.5", "1", False)]
    request = validate(_request(symbol="BTCUSDT", interval="1m", include_forming=True))

    candles = await query_candles(FakeCandleStore(rows), request, {"1m"}, T0 + 2 * MINUTE)

    assert [c.closed for c in candles] == [True, False]


@pytest.mark.asyncio
async def test_coarser_interval_aggregated_from_minutes() -> None:
    prices = [
        ("10", "12", "9", "11"),
        ("11", "15", "10", "14"),
        ("14", "14", "8", "9"),
        ("9", "10", "9", "10"),
        ("10", "11", "10", "10.5"),
        ("10.5", "20", "10", "19"),
    ]
    rows = [_minute(i, o, h, lo, c, "0.25") for i, (o, h, lo, c) in enumerate(prices)]
    start = Timestamp()
    start.FromMilliseconds(T0)
    end = Timestamp()
    end.FromMilliseconds(T0 + 10 * MINUTE)
    request = validate(
        _request(
            symbol="BTCUSDT", interval="5m", start_time=start, end_time=end, include_forming=True
        )
    )
    store = FakeCandleStore(rows)

    candles = await query_candles(store, request, {"1m"}, now_ms=T0 + 10 * MINUTE)

    first, second = candles
    assert (first.open, first.high, first.low, first.close) == (
        "10",
        "15.00000000",
        "8.00000000",
        "10.5",
    )
    assert (first.volume, first.trade_count, first.closed) == ("1.25000000", 15, True)
    assert (second.open_time, second.open, second.close, second.closed) == (
        T0 + 5 * MINUTE,
        "10.5",
        "19",
        False,
    )
    assert store.reads == [("1m", T0, T0 + 10 * MINUTE)]

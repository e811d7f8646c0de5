"""REST client and backfill against an in-memory HTTP transport serving real REST responses."""

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from finance.market.v1 import market_pb2
from finplat.price.adapters.binance.backfill import BackfillProgress, backfill
from finplat.price.adapters.binance.rest import BinanceRest
from finplat.price.adapters.binance.settings import RestRetryPolicy, RestSettings
from finplat.price.adapters.errors import RestError
from tests.unit.price.conftest import FakeClock

pytestmark = pytest.mark.asyncio

REST_FILE = Path("klines_rest_json/30m/BTCUSDT/2024-10-07.json")
SETTINGS = RestSettings(
    base_url="https://api.example",
    retry=RestRetryPolicy(initial_s=0.5, multiplier=2, jitter=0, max_attempts=3),
)


class FakeExchange:
    """Answers /api/v3/klines from recorded rows; scripted failures come first."""

    def __init__(self, rows: list[list[Any]], failures: Sequence[httpx.Response | Exception] = ()):
        self.rows = rows
        self.failures = list(failures)
        self.requests: list[httpx.Request] = []
        self.weight = "10"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        params = request.url.params
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
        rows = [r for r in self.rows if start <= r[0] <= end][: int(params["limit"])]
        return httpx.Response(200, json=rows, headers={"X-MBX-USED-WEIGHT-1M": self.weight})


def _rest(
    exchange: FakeExchange, clock: FakeClock, settings: RestSettings = SETTINGS
) -> BinanceRest:
    return BinanceRest(
        settings, clock=clock, rng=random.Random(0), transport=httpx.MockTransport(exchange)
    )


@pytest.fixture
def rows(data_dir: Path) -> list[list[Any]]:
    rows: list[list[Any]] = json.loads((data_dir / REST_FILE).read_text())
    return rows


async def test_backfill_pages_through_the_range_in_order(
    rows: list[list[Any]], fake_clock: FakeClock
) -> None:
    exchange = FakeExchange(rows)
    batches: list[list[market_pb2.Candle]] = []
    progress: list[BackfillProgress] = []

    async def on_batch(candles: Sequence[market_pb2.Candle]) -> None:
        batches.append(list(candles))

    async with _rest(exchange, fake_clock) as rest:
        total = await backfill(
            rest,
            "BTCUSDT",
            "30m",
            rows[0][0],
            rows[-1][0] + 1,
            on_batch,
            progress.append,
            page_limit=100,
        )

    received = [c for batch in batches for c in batch]
    assert total == len(received) == 672
    assert [c.open_time for c in received] == [r[0] for r in rows]
    assert [(c.close, c.trade_count, c.quote_volume) for c in received] == [
        (r[4], r[8], r[7]) for r in rows
    ]
    assert [len(b) for b in batches] == [100] * 6 + [72]
    assert progress[-1].fraction == 1.0
    first = exchange.requests[0].url.params
    assert (first["symbol"], first["interval"], first["limit"]) == ("BTCUSDT", "30m", "100")
    assert first["startTime"] == str(rows[0][0])


async def test_backfill_end_is_exclusive(rows: list[list[Any]], fake_clock: FakeClock) -> None:
    received: list[market_pb2.Candle] = []

    async def on_batch(candles: Sequence[market_pb2.Candle]) -> None:
        received.extend(candles)

    async with _rest(FakeExchange(rows), fake_clock) as rest:
        await backfill(rest, "BTCUSDT", "30m", rows[10][0], rows[13][0], on_batch)

    assert [c.open_time for c in received] == [rows[10][0], rows[11][0], rows[12][0]]


@pytest.mark.parametrize("status", [429, 418])
async def test_rate_limit_answers_are_retried_after_retry_after(
    rows: list[list[Any]], fake_clock: FakeClock, status: int
) -> None:
    limited = httpx.Response(
        status, json={"code": -1003, "msg": "Too many requests."}, headers={"Retry-After": "7"}
    )
    exchange = FakeExchange(rows, [limited])

    async with _rest(exchange, fake_clock) as rest:
        candles = await rest.klines("BTCUSDT", "30m", start_ms=rows[0][0], limit=2)

    assert fake_clock.sleeps == [7.0]
    assert [c.open_time for c in candles] == [rows[0][0], rows[1][0]]


async def test_server_errors_and_network_errors_back_off(
    rows: list[list[Any]], fake_clock: FakeClock
) -> None:
    exchange = FakeExchange(rows, [httpx.Response(502), httpx.ConnectError("refused")])

    async with _rest(exchange, fake_clock) as rest:
        candles = await rest.klines("BTCUSDT", "30m", limit=1)

    assert fake_clock.sleeps == [0.5, 1.0]
    assert len(candles) == 1


async def test_retries_give_up_after_max_attempts(
    rows: list[list[Any]], fake_clock: FakeClock
) -> None:
    exchange = FakeExchange(rows, [httpx.Response(503)] * 5)

    async with _rest(exchange, fake_clock) as rest:
        with pytest.raises(RestError, match="failed 3 times"):
            await rest.klines("BTCUSDT", "30m")

    assert len(exchange.requests) == 3


async def test_client_errors_raise_with_binance_code_without_retry(
    rows: list[list[Any]], fake_clock: FakeClock
) -> None:
    refused = httpx.Response(400, json={"code": -1121, "msg": "Invalid symbol."})
    exchange = FakeExchange(rows, [refused])

    async with _rest(exchange, fake_clock) as rest:
        with pytest.raises(RestError, match="Invalid symbol") as caught:
            await rest.klines("NOPE", "30m")

    assert (caught.value.status, caught.value.code) == (400, -1121)
    assert len(exchange.requests) == 1


async def test_used_weight_near_the_limit_pauses_until_the_next_minute(
    rows: list[list[Any]], fake_clock: FakeClock
) -> None:
    exchange = FakeExchange(rows)
    exchange.weight = "5000"  # above 80% of 6000
    fake_clock.wall_ms = 1_700_000_015_000  # 35 s into a minute

    async with _rest(exchange, fake_clock) as rest:
        await rest.klines("BTCUSDT", "30m", limit=1)
        await rest.klines("BTCUSDT", "30m", limit=1)

    assert rest.weight_pauses == 1
    assert fake_clock.sleeps == [(60_000 - fake_clock.wall_ms % 60_000) / 1000]


async def test_forming_candle_is_marked_open_when_now_is_given(
    rows: list[list[Any]], fake_clock: FakeClock
) -> None:
    async with _rest(FakeExchange(rows), fake_clock) as rest:
        candles = await rest.klines(
            "BTCUSDT", "30m", start_ms=rows[0][0], limit=2, now_ms=rows[1][0] + 5
        )

    assert [c.closed for c in candles] == [True, False]

"""The replay server speaks Binance: REST klines equal Binance's, stream paths, control messages."""

import asyncio
import gzip
import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from finplat.price.adapters.binance.rest import BinanceRest
from finplat.price.adapters.binance.settings import RestRetryPolicy, RestSettings
from tests.integration.conftest import StartReplay

pytestmark = pytest.mark.asyncio

OCT_1 = 1727740800000  # 2024-10-01 00:00 UTC
OCT_2 = OCT_1 + 86_400_000
MARKET_START = OCT_1 + 3 * 3_600_000  # where the ETH file starts


async def _get(url: str, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.get(path, params=params)


def _recorded_30m(data_dir: Path, symbol: str) -> dict[int, list[Any]]:
    rows = json.loads((data_dir / f"klines_rest_json/30m/{symbol}/2024-09-23.json").read_text())
    return {row[0]: row for row in rows}


async def test_rest_30m_klines_equal_binance_responses_field_for_field(
    start_replay: StartReplay, data_dir: Path
) -> None:
    server = await start_replay(start_ms=OCT_2)
    recorded = _recorded_30m(data_dir, "BTCUSDT")

    response = await _get(
        server.http_url,
        "/api/v3/klines",
        symbol="BTCUSDT",
        interval="30m",
        startTime=OCT_1,
        limit=1000,
    )

    rows = response.json()
    assert response.status_code == 200
    assert len(rows) == 48  # 2024-10-01, the closed day before market time
    assert rows == [recorded[row[0]] for row in rows]


async def test_rest_1m_klines_equal_the_archive_rows(
    start_replay: StartReplay, data_dir: Path
) -> None:
    server = await start_replay(start_ms=OCT_2)
    with gzip.open(data_dir / "klines/spot/BTCUSDT/1m/BTCUSDT-1m-2024-10-01.csv.gz", "rt") as f:
        archive = [line.strip().split(",") for line in f][100:103]

    response = await _get(
        server.http_url,
        "/api/v3/klines",
        symbol="BTCUSDT",
        interval="1m",
        startTime=int(archive[0][0]),
        endTime=int(archive[2][0]),
    )

    expected = [
        [int(r[0]), *r[1:6], int(r[6]), r[7], int(r[8]), r[9], r[10], r[11]] for r in archive
    ]
    assert response.json() == expected


async def test_rest_without_start_returns_the_latest_closed_klines(
    start_replay: StartReplay,
) -> None:
    server = await start_replay(start_ms=OCT_2)

    rows = (
        await _get(server.http_url, "/api/v3/klines", symbol="BTCUSDT", interval="1h", limit=3)
    ).json()

    assert [row[0] for row in rows] == [
        OCT_2 - 3 * 3_600_000,
        OCT_2 - 2 * 3_600_000,
        OCT_2 - 3_600_000,
    ]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
        ({"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        ({"interval": "1m"}, -1102),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": 5000}, -1130),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "x"}, -1100),
    ],
)
async def test_rest_errors_look_like_binance(
    start_replay: StartReplay, params: dict[str, Any], code: int
) -> None:
    server = await start_replay()

    response = await _get(server.http_url, "/api/v3/klines", **params)

    assert response.status_code == 400
    assert response.json()["code"] == code


async def test_ping_time_and_exchange_info(start_replay: StartReplay) -> None:
    server = await start_replay()

    ping = await _get(server.http_url, "/api/v3/ping")
    time = await _get(server.http_url, "/api/v3/time")
    info = await _get(server.http_url, "/api/v3/exchangeInfo")

    assert ping.json() == {}
    assert time.json() == {"serverTime": MARKET_START}  # nobody subscribed: the clock waits
    assert [s["symbol"] for s in info.json()["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    assert int(time.headers["X-MBX-USED-WEIGHT-1M"]) >= 1


async def test_rest_rate_limit_fault_is_honoured_by_the_client(start_replay: StartReplay) -> None:
    server = await start_replay(start_ms=OCT_2)
    await _get(server.http_url, "/control/rest-failures", n=1, status=429, retry_after=0.2)
    settings = RestSettings(
        base_url=server.http_url, retry=RestRetryPolicy(initial_s=5, max_attempts=2)
    )

    async with BinanceRest(settings, rng=random.Random(0)) as rest:
        candles = await rest.klines("BTCUSDT", "1m", start_ms=OCT_1, limit=2)

    assert rest.retries == 1
    assert [c.open_time for c in candles] == [OCT_1, OCT_1 + 60_000]


async def test_raw_stream_path_sends_unwrapped_closed_klines(start_replay: StartReplay) -> None:
    server = await start_replay(speed=0)

    # As fast as possible floods the socket: do not wait for a clean close behind the flood.
    async with connect(f"{server.ws_url}/ws/btcusdt@kline_1m", close_timeout=0.1) as ws:
        frames = [json.loads(await ws.recv()) for _ in range(3)]

    assert [f["e"] for f in frames] == ["kline"] * 3
    assert [f["k"]["t"] for f in frames] == [MARKET_START + i * 60_000 for i in range(3)]
    assert all(f["k"]["x"] is True and f["E"] == f["k"]["T"] + 1 for f in frames)


async def test_combined_stream_wraps_frames_and_coarse_klines_close_on_time(
    start_replay: StartReplay,
) -> None:
    server = await start_replay(speed=0)

    async with connect(f"{server.ws_url}/stream?streams=ethusdt@kline_5m", close_timeout=0.1) as ws:
        frame = json.loads(await ws.recv())

    assert frame["stream"] == "ethusdt@kline_5m"
    assert (frame["data"]["k"]["t"], frame["data"]["k"]["i"]) == (MARKET_START, "5m")


async def test_control_messages_get_binance_answers(start_replay: StartReplay) -> None:
    server = await start_replay()

    async with connect(f"{server.ws_url}/ws") as ws:
        answers = []
        for message in (
            {"method": "SUBSCRIBE", "params": ["btcusdt@trade", "ethusdt@kline_1m"], "id": 1},
            {"method": "UNSUBSCRIBE", "params": ["ethusdt@kline_1m"], "id": 2},
            {"method": "LIST_SUBSCRIPTIONS", "id": 3},
            {"method": "GET_PROPERTY", "params": ["combined"], "id": 4},
            {"method": "NOPE", "id": 5},
        ):
            await ws.send(json.dumps(message))
            answers.append(await _next_answer(ws))

    assert answers[:4] == [
        {"result": None, "id": 1},
        {"result": None, "id": 2},
        {"result": ["btcusdt@trade"], "id": 3},
        {"result": False, "id": 4},
    ]
    assert (answers[4]["code"], answers[4]["id"]) == (2, 5)


async def _next_answer(ws: Any) -> dict[str, Any]:
    while True:
        message = json.loads(await ws.recv())
        if "id" in message:
            return message  # type: ignore[no-any-return]


async def test_more_than_five_control_messages_a_second_closes_the_connection(
    start_replay: StartReplay,
) -> None:
    server = await start_replay()

    async with connect(f"{server.ws_url}/ws") as ws:
        for i in range(6):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        with pytest.raises(ConnectionClosed) as closed:
            await _read_until_closed(ws)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def _read_until_closed(ws: Any) -> None:
    async with asyncio.timeout(5):
        while True:
            await ws.recv()


async def test_an_invalid_stream_name_is_refused_at_the_handshake(
    start_replay: StartReplay,
) -> None:
    server = await start_replay()

    response = await _get(server.http_url, "/ws/btcusdt@depth")

    assert response.status_code == 400


async def test_a_client_leaving_mid_flood_does_not_stall_the_next_one(
    start_replay: StartReplay,
) -> None:
    server = await start_replay(speed=0, send_queue_size=10, loop=True)
    url = f"{server.ws_url}/ws/btcusdt@kline_1m"

    async with connect(url, close_timeout=0.1) as first:
        first_open = json.loads(await first.recv())["k"]["t"]
        await asyncio.sleep(0.2)  # the market fills this client's queue, then waits on it
    async with connect(url, close_timeout=0.1) as second, asyncio.timeout(5):
        later_open = json.loads(await second.recv())["k"]["t"]

    assert later_open > first_open

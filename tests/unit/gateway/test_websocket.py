"""`/ws/prices` through a real uvicorn server, with the `websockets` client, against the fakes."""

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from google.protobuf import descriptor
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.frames import Close
from websockets.protocol import State
from websockets.uri import parse_uri

from finplat.gateway.service.app import create_app
from tests.unit.gateway.conftest import serve, settings, upstreams_at
from tests.unit.gateway.fakes import FakeUpstream, price

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUEUE_FRAMES = 8


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ws_url(
    upstream: FakeUpstream, thing_service: descriptor.ServiceDescriptor
) -> AsyncIterator[str]:
    app = create_app(
        settings(
            ws_send_queue_frames=QUEUE_FRAMES, ws_ping_interval_s=0.3, ws_batch_interval_ms=50
        ),
        upstreams=upstreams_at(upstream.address, thing_service),
    )
    async with serve(app) as url:
        yield url.replace("http://", "ws://")


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def no_stream_left(upstream: FakeUpstream) -> None:
    # The previous test's connections close asynchronously: start once their upstream call is
    # gone, so "one active stream" below means this test's own.
    await wait_for_streams(upstream, 0)


async def frame(ws: ClientConnection) -> Any:
    """The next frame that is not a ping."""
    async with asyncio.timeout(5):
        while True:
            value = json.loads(await ws.recv())
            if not (isinstance(value, dict) and value.get("type") == "ping"):
                return value


async def wait_for_streams(upstream: FakeUpstream, count: int) -> None:
    async with asyncio.timeout(5):
        await upstream.price.wait_for_streams(count)


async def test_subscribe_with_query_symbols_and_receive_only_those(
    ws_url: str, upstream: FakeUpstream
) -> None:
    async with connect(f"{ws_url}/ws/prices?symbols=btcusdt") as ws:
        assert await frame(ws) == {"type": "subscribed", "symbols": ["BTCUSDT"]}
        await wait_for_streams(upstream, 1)

        upstream.price.publish(price("ETHUSDT"))
        upstream.price.publish(price("BTCUSDT", "1.5"))

        assert await frame(ws) == {
            "symbol": "BTCUSDT",
            "price": "1.5",
            "timestamp": 1_700_000_000_000,
            "volume": "0.5",
            "service": "price-service",
            "kind": "EVENT_KIND_TRADE",
            "event_id": "42",
            "exchange": "binance",
            "receive_timestamp": 1_700_000_000_003,
        }


async def test_subscribe_and_unsubscribe_by_message(ws_url: str, upstream: FakeUpstream) -> None:
    async with connect(f"{ws_url}/ws/prices") as ws:
        await ws.send(json.dumps({"action": "subscribe", "symbols": ["ETHUSDT", "BTCUSDT"]}))
        assert await frame(ws) == {"type": "subscribed", "symbols": ["BTCUSDT", "ETHUSDT"]}
        await ws.send(json.dumps({"action": "unsubscribe", "symbols": ["BTCUSDT"]}))
        assert await frame(ws) == {"type": "subscribed", "symbols": ["ETHUSDT"]}
        await wait_for_streams(upstream, 1)

        upstream.price.publish(price("BTCUSDT"))
        upstream.price.publish(price("ETHUSDT"))

        assert (await frame(ws))["symbol"] == "ETHUSDT"


async def test_star_subscribes_to_every_symbol(ws_url: str, upstream: FakeUpstream) -> None:
    async with connect(f"{ws_url}/ws/prices?symbols=*") as ws:
        await frame(ws)
        await wait_for_streams(upstream, 1)

        upstream.price.publish(price("SOLUSDT"))

        assert (await frame(ws))["symbol"] == "SOLUSDT"


async def test_batched_clients_get_arrays_of_updates(ws_url: str, upstream: FakeUpstream) -> None:
    async with connect(f"{ws_url}/ws/prices?symbols=BTCUSDT&batch=true") as ws:
        await frame(ws)
        await wait_for_streams(upstream, 1)

        for value in ("1", "2", "3"):
            upstream.price.publish(price("BTCUSDT", value))

        received: list[str] = []
        while len(received) < 3:
            batch = await frame(ws)
            assert isinstance(batch, list)
            received += [update["price"] for update in batch]
        assert received == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        pytest.param("not json", "Expecting value", id="malformed JSON"),
        pytest.param("[1]", "JSON object", id="not an object"),
        pytest.param('{"action": "buy", "symbols": []}', '"action"', id="unknown action"),
        pytest.param(
            '{"action": "subscribe", "symbols": "BTCUSDT"}', '"symbols"', id="symbols not a list"
        ),
        pytest.param(
            '{"action": "subscribe", "symbols": ["BTC/USDT"]}',
            "invalid symbols: BTC/USDT",
            id="bad symbol",
        ),
        pytest.param(b"\x00\x01", "binary frames", id="binary frame"),
    ],
)
async def test_a_bad_message_gets_an_error_frame_and_the_connection_lives_on(
    ws_url: str, message: str | bytes, error: str
) -> None:
    async with connect(f"{ws_url}/ws/prices") as ws:
        await ws.send(message)
        reply = await frame(ws)
        await ws.send(json.dumps({"action": "subscribe", "symbols": ["BTCUSDT"]}))
        ack = await frame(ws)

    assert reply["type"] == "error"
    assert error in reply["message"]
    assert ack == {"type": "subscribed", "symbols": ["BTCUSDT"]}


async def test_too_many_symbols_is_an_error_frame(ws_url: str) -> None:
    async with connect(f"{ws_url}/ws/prices") as ws:
        await ws.send(
            json.dumps({"action": "subscribe", "symbols": [f"S{i}" for i in range(1025)]})
        )

        assert "at most 1024 symbols" in (await frame(ws))["message"]


async def test_pings_keep_an_idle_connection_alive(ws_url: str) -> None:
    async with connect(f"{ws_url}/ws/prices") as ws:
        async with asyncio.timeout(5):
            ping = json.loads(await ws.recv())

    assert ping["type"] == "ping"
    assert isinstance(ping["time"], int)


async def test_clients_share_one_upstream_call_cancelled_when_the_last_leaves(
    ws_url: str, upstream: FakeUpstream
) -> None:
    opened = upstream.price.streams_opened
    upstream.price.streams_cancelled.clear()
    async with connect(f"{ws_url}/ws/prices?symbols=BTCUSDT") as first:
        async with connect(f"{ws_url}/ws/prices?symbols=ETHUSDT") as second:
            await frame(first)
            await frame(second)
            await wait_for_streams(upstream, 1)
            upstream.price.publish(price("BTCUSDT"))
            upstream.price.publish(price("ETHUSDT"))
            assert (await frame(first))["symbol"] == "BTCUSDT"
            assert (await frame(second))["symbol"] == "ETHUSDT"
        assert upstream.price.active_streams == 1

    async with asyncio.timeout(5):
        await upstream.price.streams_cancelled.wait()
    assert upstream.price.streams_opened == opened + 1
    await wait_for_streams(upstream, 0)


async def test_an_upstream_failure_is_announced_and_the_stream_resumes(
    ws_url: str, upstream: FakeUpstream
) -> None:
    async with connect(f"{ws_url}/ws/prices?symbols=BTCUSDT") as ws:
        await frame(ws)
        await wait_for_streams(upstream, 1)
        opened = upstream.price.streams_opened

        upstream.price.publish(grpc.StatusCode.UNAVAILABLE)

        assert await frame(ws) == {
            "type": "error",
            "message": "price stream interrupted; reconnecting",
        }
        async with asyncio.timeout(5):
            await upstream.price.wait_for_opened(opened + 1)
            await upstream.price.wait_for_streams(1)
        upstream.price.publish(price("BTCUSDT", "2.5"))
        assert (await frame(ws))["price"] == "2.5"


async def test_slow_client_is_closed_with_1013_and_never_slows_the_others(
    ws_url: str, upstream: FakeUpstream
) -> None:
    slow, reader, writer = await open_unread_socket(f"{ws_url}/ws/prices?symbols=BTCUSDT")
    async with connect(f"{ws_url}/ws/prices?symbols=BTCUSDT", max_size=None) as fast:
        await frame(fast)
        await wait_for_streams(upstream, 1)
        big = "x" * 65_536

        for i in range(200):  # ~13 MB: far more than socket buffers and the 8-frame queue hold
            update = price("BTCUSDT", str(i))
            update.service = big
            upstream.price.publish(update)
            received = await frame(fast)
            assert received["price"] == str(i)  # the fast client keeps up, update by update

        await wait_for_drop(ws_url)
    close = await read_until_close(slow, reader)
    writer.close()

    assert close.code == 1013
    assert close.reason == "send queue full"


async def open_unread_socket(
    url: str,
) -> tuple[ClientProtocol, asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that completes the handshake and then reads nothing."""
    protocol = ClientProtocol(parse_uri(url))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    uri = parse_uri(url)
    await asyncio.get_running_loop().sock_connect(sock, (uri.host, uri.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    protocol.send_request(protocol.connect())
    writer.write(b"".join(protocol.data_to_send()))
    while protocol.state is State.CONNECTING:
        protocol.receive_data(await reader.read(1))
    return protocol, reader, writer


async def wait_for_drop(url: str) -> None:
    async with httpx.AsyncClient(base_url=url.replace("ws://", "http://")) as http:
        async with asyncio.timeout(10):
            while True:
                metrics = (await http.get("/metrics")).text
                if "finplat_gateway_websocket_slow_client_drops_total 1.0" in metrics:
                    return
                await asyncio.sleep(0.05)


async def read_until_close(protocol: ClientProtocol, reader: asyncio.StreamReader) -> Close:
    async with asyncio.timeout(10):
        while True:
            data = await reader.read(1 << 20)
            if not data:
                protocol.receive_eof()
            else:
                protocol.receive_data(data)
            protocol.events_received()
            if protocol.close_rcvd is not None:
                return protocol.close_rcvd
            if not data:
                raise AssertionError("connection closed without a close frame")

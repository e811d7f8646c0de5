"""The replay server: Binance's stream protocol and REST endpoints on one port.

WebSocket paths as on Binance: `/ws/<stream>` (raw events), `/stream?streams=a/b` (combined
envelope), `/ws` and `/stream` alone (subscribe later). Control messages SUBSCRIBE,
UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY and GET_PROPERTY ("combined") get Binance's
answers and errors; more than `max_control_messages_per_s` in a second closes the
connection (1008), as does exceeding `max_streams_per_connection`. The websockets keepalive
sends the ping frames (every 20 s by default) and drops clients that do not answer.
Plain HTTP GETs on the same port are served by `process_request` (see http_api.py).

    async with ReplayServer(ReplaySettings(port=0, speed=60)) as server:
        server.ws_url, server.http_url, server.faults.drop()
"""

import asyncio
import logging
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from finplat.binance import archive
from finplat.binance.streams import parse_stream
from finplat.core.clock import Clock, SystemClock
from finplat.replay.client import Client
from finplat.replay.faults import Faults
from finplat.replay.http_api import RestApi
from finplat.replay.market import Market
from finplat.replay.protocol import ControlHandler
from finplat.replay.settings import ReplaySettings

logger = logging.getLogger(__name__)
# websockets logs each plain HTTP GET as "connection rejected (200 OK)" at INFO: keep its
# warnings and errors only.
_websockets_logger = logging.getLogger(f"{__name__}.websockets")
_websockets_logger.setLevel(logging.WARNING)


class ReplayServer:
    """Loads the data, serves it and keeps the market clock; use with `async with`."""

    def __init__(self, settings: ReplaySettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self._clock = clock or SystemClock()
        self.faults = Faults(self._clock)
        self.market = self._load_market()
        self._api = RestApi(settings, self.market, self.faults, self._clock, self.stats)
        self._control = ControlHandler(settings, self.market)
        self._server: Server | None = None
        self._market_task: asyncio.Task[None] | None = None
        self.connections_total = 0

    def _load_market(self) -> Market:
        s = self.settings
        tables, trades = {}, {}
        for symbol in s.symbols:
            files = archive.kline_files(s.data_dir, symbol, s.kline_first_day, s.kline_last_day)
            files = files or archive.ohlcv_files(s.data_dir, symbol)
            if files:
                tables[symbol] = archive.load_kline_table(symbol, files)
            if trade_files := archive.trade_files(s.data_dir, symbol):
                trades[symbol] = trade_files
        if not tables and not trades:
            logger.warning("no market data found", extra={"data_dir": str(s.data_dir)})
        logger.info(
            "replay data loaded",
            extra={"klines": {k: len(v) for k, v in tables.items()}, "trades": sorted(trades)},
        )
        return Market(
            tables,
            trades,
            speed=s.speed,
            loop=s.loop,
            kline_intervals=s.kline_intervals,
            clock=self._clock,
            start_ms=s.start_ms,
        )

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        self._server = await serve(
            self._serve_client,
            self.settings.host,
            self.settings.port,
            process_request=self._process_request,
            ping_interval=self.settings.ping_interval_s,
            ping_timeout=self.settings.ping_timeout_s,
            logger=_websockets_logger,
        )
        self._market_task = asyncio.create_task(self.market.run(), name="replay-market")
        logger.info("replay server listening", extra={"url": self.ws_url})

    async def stop(self) -> None:
        if self._market_task is not None:
            self._market_task.cancel()
            await asyncio.gather(self._market_task, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Future()  # until cancelled (Ctrl-C)
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.market.listeners),
            "connections_total": self.connections_total,
            "events_sent": self.market.events_sent,
            "market_time_ms": self.market.now_ms(),
            "dropped": self.faults.dropped,
            "malformed_sent": self.faults.malformed_sent,
        }

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path.startswith(("/api/", "/control/")):
            status, body, headers = self._api.handle(url.path, parse_qs(url.query))
            return _response(status, body, headers)
        if url.path in ("/ws", "/stream") or url.path.startswith("/ws/"):
            try:
                _streams_of(request.path)
            except ValueError as exc:
                return _response(400, f'{{"code":-1100,"msg":"{exc}"}}'.encode(), {})
            return None  # go on with the WebSocket handshake
        return _response(404, b'{"code":-1000,"msg":"Not found."}', {})

    async def _serve_client(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # set by the handshake
        combined_, streams = _streams_of(ws.request.path)
        client = Client(ws, streams, combined_, self.settings.send_queue_size)
        self.connections_total += 1
        self.market.add_listener(client)
        self.faults.targets.add(client)
        if streams:
            self.market.start()
        sender = asyncio.create_task(self._send(client), name="replay-sender")
        try:
            async for message in ws:
                await self._control.handle(client, message)
        except ConnectionClosed:
            pass
        finally:
            self.market.remove_listener(client)
            self.faults.targets.discard(client)
            client.detach()
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _send(self, client: Client) -> None:
        try:
            while True:
                frame = await client.queue.get()
                await self.faults.wait_unstalled()
                await client.ws.send(frame, text=True)
        except ConnectionClosed:
            pass


def _streams_of(path: str) -> tuple[bool, set[str]]:
    """(combined?, stream names) of a WebSocket path; ValueError for a bad stream name."""
    url = urlsplit(path)
    if url.path == "/stream" or url.path.startswith("/stream/"):
        names = "/".join(parse_qs(url.query).get("streams", []))
        is_combined = True
    else:
        names = url.path.removeprefix("/ws").strip("/")
        is_combined = False
    streams = {name for name in names.split("/") if name}
    for name in streams:
        parse_stream(name)
    return is_combined, streams


def _response(status: int, body: bytes, headers: dict[str, str]) -> Response:
    all_headers = Headers(
        {
            "Content-Type": "application/json;charset=UTF-8",
            "Content-Length": str(len(body)),
            "Connection": "close",
            **headers,
        }
    )
    return Response(status, HTTPStatus(status).phrase, all_headers, body)

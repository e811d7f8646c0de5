"""`/ws/prices`: live price updates over a WebSocket, relayed from the shared price stream.

Protocol (text frames, JSON):
- subscribe on connect with `?symbols=BTCUSDT,ETHUSDT` (`*` for every symbol), or later with
  `{"action": "subscribe"|"unsubscribe", "symbols": [...]}`; each change is acknowledged with
  `{"type": "subscribed", "symbols": [...]}` (the whole current set);
- a price frame is one update object with the original field names (`symbol`, `price`,
  `timestamp`, `volume`, `service`, then `kind`, `event_id`, `exchange`, `receive_timestamp`);
  with `?batch=true` a frame is a JSON array of the updates of the last interval instead;
- `{"type": "ping", "time": <ms>}` every ping interval (uvicorn also sends protocol pings);
- a bad message gets `{"type": "error", "message": "..."}` and the connection stays open;
- a client whose send queue fills is closed with 1013 (Try Again Later): the server cannot
  deliver at the rate the client reads, which is temporary from the client's point of view,
  and 1008 (Policy Violation) is about what a client *sent*. It never slows other clients.
- with an API token configured, the handshake needs `Authorization: Bearer <token>` (or, for
  browsers, which cannot set headers on WebSockets, `?access_token=<token>`), else HTTP 401.
"""

import asyncio
import contextlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qs

import grpc
from starlette.types import Receive, Scope, Send

from finplat.gateway.service.asgi import bearer_token_ok
from finplat.gateway.service.metrics import GatewayMetrics
from finplat.gateway.service.price_fanout import ALL_SYMBOLS, ClientQueue, PriceFanout
from finplat.gateway.service.status_to_http import GatewayError
from finplat.market.symbols import is_symbol

logger = logging.getLogger(__name__)

_TRY_AGAIN_LATER = 1013
_CLOSE_TIMEOUT_S = 5.0


class PriceSocket:
    """Raw ASGI WebSocket endpoint: frames go straight to `send`, no wrapper per frame."""

    def __init__(
        self,
        fanout: PriceFanout,
        metrics: GatewayMetrics,
        *,
        queue_frames: int,
        max_symbols: int,
        api_token: str | None,
    ) -> None:
        self.fanout = fanout
        self.metrics = metrics
        self.queue_frames = queue_frames
        self.max_symbols = max_symbols
        self.api_token = api_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if self.api_token is not None and not self._authorized(scope, query):
            await _deny(scope, send)
            return
        await send({"type": "websocket.accept"})
        client = ClientQueue(self.queue_frames)
        batched = query.get("batch", ["false"])[-1].lower() in ("1", "true", "yes")
        self.fanout.connect(client)
        self.metrics.websockets.inc()
        try:
            symbols: set[str] = set()
            if "symbols" in query:
                try:
                    wanted = ",".join(query["symbols"]).split(",")
                    symbols = self._change(client, symbols, "subscribe", wanted, batched)
                except ValueError as exc:
                    client.offer(_frame({"type": "error", "message": str(exc)}))
            await self._session(client, receive, send, batched, symbols)
        finally:
            self.fanout.disconnect(client)
            self.metrics.websockets.dec()

    async def _session(
        self, client: ClientQueue, receive: Receive, send: Send, batched: bool, symbols: set[str]
    ) -> None:
        reader = asyncio.create_task(self._read(client, receive, batched, symbols))
        writer = asyncio.create_task(_write(client, send))
        dropped = asyncio.create_task(client.dropped.wait())
        tasks = {reader, writer, dropped}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if client.dropped.is_set():
            self.metrics.websocket_drops.inc()
            logger.info("dropping a slow WebSocket client (send queue full)")
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await send(
                        {
                            "type": "websocket.close",
                            "code": _TRY_AGAIN_LATER,
                            "reason": "send queue full",
                        }
                    )

    async def _read(
        self, client: ClientQueue, receive: Receive, batched: bool, symbols: set[str]
    ) -> None:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            text = event.get("text")
            try:
                if text is None:
                    raise ValueError("binary frames are not supported; send JSON text")
                request = json.loads(text)
                if not isinstance(request, dict):
                    raise ValueError("a message must be a JSON object")
                action, wanted = request.get("action"), request.get("symbols")
                if action not in ("subscribe", "unsubscribe"):
                    raise ValueError('"action" must be "subscribe" or "unsubscribe"')
                if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted):
                    raise ValueError('"symbols" must be a list of strings')
                symbols = self._change(client, symbols, action, wanted, batched)
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                client.offer(_frame({"type": "error", "message": str(exc)}))

    def _change(
        self, client: ClientQueue, current: set[str], action: str, wanted: list[str], batched: bool
    ) -> set[str]:
        requested = {s.strip().upper() for s in wanted if s.strip()}
        bad = sorted(s for s in requested if s != ALL_SYMBOLS and not is_symbol(s))
        if bad:
            # Echo a few, shortened: the message is bounded whatever the client sent.
            shown = ", ".join(symbol[:40] for symbol in bad[:5])
            raise ValueError(f"invalid symbols: {shown}{', ...' if len(bad) > 5 else ''}")
        updated = current | requested if action == "subscribe" else current - requested
        if len(updated) > self.max_symbols:
            raise ValueError(f"at most {self.max_symbols} symbols per connection")
        self.fanout.subscribe(client, frozenset(updated), batched=batched)
        client.offer(_frame({"type": "subscribed", "symbols": sorted(updated)}))
        return updated

    def _authorized(self, scope: Scope, query: dict[str, list[str]]) -> bool:
        assert self.api_token is not None
        if bearer_token_ok(scope, self.api_token):
            return True
        given = query.get("access_token", [""])[-1]
        return hmac.compare_digest(given.encode(), self.api_token.encode())


async def _write(client: ClientQueue, send: Send) -> None:
    frames = client.frames
    while True:
        await client.ready.wait()
        client.ready.clear()
        while frames:
            try:
                await send({"type": "websocket.send", "text": frames.popleft()})
            except OSError:
                return  # the client went away mid-send; the reader sees the disconnect


async def _deny(scope: Scope, send: Send) -> None:
    error = GatewayError(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": error.body()})
    else:
        await send({"type": "websocket.close", "code": 1008})


def _frame(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))

"""Binance's WebSocket control messages, server side: subscribe, list, properties, errors."""

import asyncio
import logging
from collections import deque
from typing import Protocol

import msgspec

from finplat.binance.streams import parse_stream
from finplat.binance.wire import ControlError, ControlReply, encoder
from finplat.replay.market import Market
from finplat.replay.settings import ReplaySettings

logger = logging.getLogger(__name__)

_METHODS = "SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY"
_request = msgspec.json.Decoder(dict[str, object])


class ControlClient(Protocol):
    """The parts of a connection the control messages touch."""

    streams: set[str]
    combined: bool
    control_times: deque[float]

    def inject(self, frame: bytes) -> None: ...

    def abort(self) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class ControlHandler:
    """Answers one client message the way Binance's stream servers do."""

    def __init__(self, settings: ReplaySettings, market: Market) -> None:
        self._settings = settings
        self._market = market

    async def handle(self, client: ControlClient, message: str | bytes) -> None:
        if self._over_limit(client):
            logger.warning("too many control messages, closing", extra={"client": id(client)})
            await client.close(1008, "Too many requests")
            return
        try:
            reply = self._answer(client, message)
        except _RefusedError as exc:
            reply = encoder.encode(ControlError(code=exc.code, msg=exc.msg, id=exc.request_id))
        try:
            client.inject(reply)
        except asyncio.QueueFull:
            client.abort()

    def _over_limit(self, client: ControlClient) -> bool:
        now = asyncio.get_running_loop().time()
        times = client.control_times
        times.append(now)
        while times and times[0] <= now - 1.0:
            times.popleft()
        return len(times) > self._settings.max_control_messages_per_s

    def _answer(self, client: ControlClient, message: str | bytes) -> bytes:
        try:
            request = _request.decode(message)
        except msgspec.MsgspecError as exc:
            raise _RefusedError(3, f"Invalid JSON: {exc}", None) from None
        request_id = request.get("id")
        if not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 0:
            raise _RefusedError(2, "Invalid request: request ID must be an unsigned integer", None)
        method, params = request.get("method"), request.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            names = self._stream_params(params, request_id)
            if method == "UNSUBSCRIBE":
                client.streams.difference_update(names)
            elif len(client.streams | names) > self._settings.max_streams_per_connection:
                raise _RefusedError(
                    2, "Invalid request: too many streams for one connection", request_id
                )
            else:
                client.streams.update(names)
                self._market.start()
            return encoder.encode(ControlReply(result=None, id=request_id))
        if method == "LIST_SUBSCRIPTIONS":
            return encoder.encode(ControlReply(result=sorted(client.streams), id=request_id))
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return self._property(client, method, params, request_id)
        raise _RefusedError(
            2, f"Invalid request: unknown variant {method}, expected one of {_METHODS}", request_id
        )

    @staticmethod
    def _stream_params(params: object, request_id: int) -> set[str]:
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise _RefusedError(
                2, "Invalid request: params must be a list of stream names", request_id
            )
        try:
            return {parse_stream(name).name for name in params}
        except ValueError as exc:
            raise _RefusedError(2, f"Invalid request: {exc}", request_id) from None

    @staticmethod
    def _property(client: ControlClient, method: str, params: object, request_id: int) -> bytes:
        if not isinstance(params, list) or not params or params[0] != "combined":
            raise _RefusedError(0, "Unknown property", request_id)
        if method == "GET_PROPERTY":
            return encoder.encode(ControlReply(result=client.combined, id=request_id))
        if len(params) < 2 or not isinstance(params[1], bool):
            raise _RefusedError(1, "Invalid value type: expected Boolean", request_id)
        client.combined = params[1]
        return encoder.encode(ControlReply(result=None, id=request_id))


class _RefusedError(Exception):
    def __init__(self, code: int, msg: str, request_id: int | None) -> None:
        super().__init__(msg)
        self.code, self.msg, self.request_id = code, msg, request_id

"""Server-streaming RPCs as newline-delimited JSON (grpc-gateway's ForwardResponseStream) or,
when the client accepts `text/event-stream`, as Server-Sent Events.

Each message is `{"result": <message>}` on its own line; a failure is `{"error": <Status>}`. As
in grpc-gateway, the HTTP status is decided by the first thing the upstream sends: a failure
before any message is answered with the mapped HTTP status, a failure after it ends the 200
stream with an error line. SSE carries the same envelopes as `data:` events, plus comment lines
while the stream is quiet so proxies do not time it out. A client that goes away cancels the call.

A stream of `google.api.HttpBody` is a file sent in pieces: as grpc-gateway does, each
message's bytes are written as they are, with no envelope or delimiter, under the first
message's content type (a failure after it still ends the body with an error line).
"""

import asyncio
import contextlib
import logging
from typing import Any

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]
from google.protobuf import message
from starlette.types import Receive, Scope, Send

from finplat.gateway.domain import marshal
from finplat.gateway.domain.bindings import Binding
from finplat.gateway.service.asgi import header
from finplat.gateway.service.deadline import Deadline, upstream_failure
from finplat.gateway.service.headers import outgoing_headers
from finplat.gateway.service.status_to_http import GatewayError, from_rpc_error

logger = logging.getLogger(__name__)

StreamCall = grpc.aio.UnaryStreamCall[message.Message, message.Message]

_HTTP_BODY = "google.api.HttpBody"
_NDJSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    # nginx buffers responses unless told otherwise, which would hold events back.
    (b"x-accel-buffering", b"no"),
]


def wants_event_stream(scope: Scope) -> bool:
    accept = header(scope, b"accept")
    return accept is not None and b"text/event-stream" in accept


async def forward_stream(
    call: StreamCall,
    binding: Binding,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    keepalive_s: float,
    deadline: Deadline | None,
) -> None:
    disconnected = asyncio.Event()

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected.set()
        call.cancel()

    watcher = asyncio.create_task(watch_disconnect())
    try:
        await _relay(call, binding, send, wants_event_stream(scope), keepalive_s, deadline)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not disconnected.is_set() or (current is not None and current.cancelling()):
            raise
        logger.debug("stream client went away", extra={"rpc": binding.rpc_path})
    finally:
        watcher.cancel()
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _relay(
    call: StreamCall,
    binding: Binding,
    send: Send,
    sse: bool,
    keepalive_s: float,
    deadline: Deadline | None,
) -> None:
    started = False
    error: GatewayError | None = None
    # grpc-gateway keeps HttpBody streams raw whatever the client accepts: no SSE framing.
    raw = binding.response_field is None and binding.method.output_type.full_name == _HTTP_BODY
    sse = sse and not raw
    while True:
        try:
            item = await (
                _read_with_keepalive(call, send, keepalive_s) if sse and started else call.read()
            )
        except grpc.aio.AioRpcError as exc:
            error = upstream_failure(from_rpc_error(exc), deadline)
            break
        if item is grpc.aio.EOF:
            break
        assert isinstance(item, message.Message)
        if isinstance(item, httpbody_pb2.HttpBody) and raw:
            if not started:
                content_type = (b"content-type", item.content_type.encode())
                await _start(call, send, 200, [content_type])
                started = True
            await send({"type": "http.response.body", "body": item.data, "more_body": True})
            continue
        try:
            chunk = _chunk(binding, item, sse)
        except marshal.MARSHAL_ERRORS as exc:
            # As grpc-gateway: a message that cannot be rendered ends the stream with an error.
            logger.exception("cannot marshal %s", binding.method.output_type.full_name)
            error = GatewayError(grpc.StatusCode.UNKNOWN, f"failed to marshal response: {exc}")
            break
        if not started:
            await _start(call, send, 200, _SSE_HEADERS if sse else _NDJSON_HEADERS)
            started = True
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    if error is not None:
        envelope = {"error": error.status_dict()}
        if not started:
            await _start(call, send, error.status, _NDJSON_HEADERS, error)
            await send({"type": "http.response.body", "body": marshal.dumps(envelope) + b"\n"})
            return
        await send({"type": "http.response.body", "body": _frame(envelope, sse), "more_body": True})
    elif not started:
        await _start(call, send, 200, _SSE_HEADERS if sse else _NDJSON_HEADERS)
    await send({"type": "http.response.body", "body": b""})


async def _read_with_keepalive(call: StreamCall, send: Send, keepalive_s: float) -> object:
    # Keep waiting on the same read across keep-alives: cancelling a pending read cancels the RPC.
    read = asyncio.ensure_future(call.read())
    try:
        while not (await asyncio.wait({read}, timeout=keepalive_s))[0]:
            await send(
                {"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True}
            )
    finally:
        if not read.done():
            read.cancel()
    return await read


async def _start(
    call: StreamCall,
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    error: GatewayError | None = None,
) -> None:
    if error is not None:
        metadata = outgoing_headers(error.initial_metadata, ())
    else:
        metadata = outgoing_headers(await call.initial_metadata() or (), ())
    await send({"type": "http.response.start", "status": status, "headers": headers + metadata})


def _chunk(binding: Binding, item: message.Message, sse: bool) -> bytes:
    field = binding.response_field
    result = marshal.to_dict(item) if field is None else marshal.field_value(item, field)
    return _frame({"result": result}, sse)


def _frame(envelope: dict[str, Any], sse: bool) -> bytes:
    data = marshal.dumps(envelope)
    return b"data: " + data + b"\n\n" if sse else data + b"\n"

"""Small raw-ASGI helpers: the hot path skips Starlette's Request/Response objects."""

import hmac
from collections.abc import Iterable

import grpc
from starlette.types import Receive, Scope, Send

from finplat.gateway.service.headers import outgoing_headers
from finplat.gateway.service.status_to_http import GatewayError

JSON_CONTENT_TYPE = (b"content-type", b"application/json")


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    content_type: tuple[bytes, bytes],
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [content_type, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await send_body(send, status, body, JSON_CONTENT_TYPE, headers)


async def send_error(send: Send, error: GatewayError) -> None:
    """grpc-gateway's DefaultHTTPErrorHandler: Status body, mapped status, metadata headers."""
    headers = outgoing_headers(error.initial_metadata, error.trailing_metadata)
    if error.status == 401:
        # RFC 9110 requires a challenge on 401; grpc-gateway sets one for Unauthenticated too.
        headers.append((b"www-authenticate", b"Bearer"))
    await send_json(send, error.status, error.body(), headers)


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def bearer_token_ok(scope: Scope, token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (constant-time compare)."""
    value = header(scope, b"authorization")
    if value is None or not value.startswith(b"Bearer "):
        return False
    return hmac.compare_digest(value[len(b"Bearer ") :].strip(), token.encode())


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when it grows past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def read_request_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body; 413 when it is over `limit` bytes, before reading it when it says so."""
    length = header(scope, b"content-length")
    too_long = length is not None and length.isdigit() and int(length) > limit
    body = None if too_long else await read_body(receive, limit)
    if body is None:
        raise GatewayError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"request body larger than {limit} bytes",
            http_status=413,
        )
    return body

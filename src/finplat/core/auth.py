"""Bearer-token check for gRPC services: a `grpc.aio.ServerInterceptor` both services install.

The gateway forwards `Authorization` as the `authorization` metadata key (as grpc-gateway does),
so a token set on the gateway and on the services protects both doors with one secret. Health
checks and reflection stay open: load balancers, the gateway's `/health` and grpcurl need them
without credentials.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias

import grpc
from pydantic import SecretStr

logger = logging.getLogger(__name__)

OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_MESSAGE = "missing or invalid bearer token"

# A string: grpc's classes are generic only in the stubs, not at run time.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without `authorization: Bearer <token>` with UNAUTHENTICATED."""

    def __init__(self, token: SecretStr, open_prefixes: Iterable[str] = OPEN_PREFIXES) -> None:
        self._expected = f"Bearer {token.get_secret_value()}".encode()
        self._open_prefixes = tuple(open_prefixes)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        if method.startswith(self._open_prefixes) or self._authorized(handler_call_details):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: let gRPC answer UNIMPLEMENTED as usual
        logger.info("rejected an unauthenticated call", extra={"method": method})
        return _deny(handler)

    def _authorized(self, details: grpc.HandlerCallDetails) -> bool:
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                # Constant-time comparison: the token must not leak through timing.
                return hmac.compare_digest(given, self._expected)
        return False


def _deny(handler: Handler) -> Handler:
    """A handler of the same shape as `handler` that aborts every call."""
    options = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    # Streaming responses get an async generator, the shape interceptors outside this one (the
    # per-RPC metrics) iterate; grpc.aio alone would accept a coroutine too.
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_abort, **options)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_abort_stream, **options)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_abort, **options)
    return grpc.stream_stream_rpc_method_handler(_abort_stream, **options)


async def _abort(_: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, _MESSAGE)


async def _abort_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    await _abort(request, context)
    yield  # never reached (abort raises): the yield makes this a generator

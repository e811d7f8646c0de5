"""Per-RPC server metrics: py-async-grpc-prometheus, with aborted streams counted.

The library (the grpc.aio port of py-grpc-prometheus; the original supports only the sync
server) exports go-grpc-prometheus's names: `grpc_server_started_total`,
`grpc_server_handled_total{grpc_code}`, `grpc_server_handling_seconds` and the stream message
counters. It counts a server stream's status only when the stream's generator ends normally, so
a stream ended by `context.abort()` (a refused token, a bad symbol, a slow subscriber cut off)
would go uncounted. grpc.aio has already sent the status when `abort` raises, and raises the
abort again by itself once the handler returns, so ending the generator there loses nothing
and lets the library read the status from the context.
"""

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry
from py_async_grpc_prometheus.prometheus_async_server_interceptor import (
    PromAsyncServerInterceptor,
)

Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]


def _ending_at_abort(behaviour: Behaviour) -> Behaviour:
    async def stream(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async for response in behaviour(request, context):
                yield response
        except grpc.aio.AbortError:
            return  # status already sent; grpc.aio re-raises the abort after the handler

    return stream


class ServerMetricsInterceptor(PromAsyncServerInterceptor):  # type: ignore[misc]
    """go-grpc-prometheus's server metrics, the handling-time histogram on, into `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(enable_handling_time_histogram=True, registry=registry)

    def _wrap_rpc_behavior(self, handler: Any, fn: Callable[..., Behaviour]) -> Any:
        # The library's hook that wraps each handler's behaviour; pinned library version.
        def wrap(behaviour: Behaviour, request_streaming: bool, response_streaming: bool) -> Any:
            if response_streaming:
                behaviour = _ending_at_abort(behaviour)
            return fn(behaviour, request_streaming, response_streaming)

        return super()._wrap_rpc_behavior(handler, wrap)

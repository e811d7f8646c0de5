"""Prometheus metrics of the gateway, kept in a registry per app so apps never collide."""

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finplat.gateway.service.routes import ROUTE_KEY

# Unmatched paths share one label value: raw paths would make label cardinality unbounded.
UNMATCHED_ROUTE = "unmatched"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "finplat_gateway_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "finplat_gateway_http_request_duration_seconds",
            "Time to the end of the response (of the whole stream for streaming routes).",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.websockets = Gauge(
            "finplat_gateway_websockets_open",
            "Open WebSocket connections.",
            registry=self.registry,
        )
        self.websocket_drops = Counter(
            "finplat_gateway_websocket_slow_client_drops",
            "WebSocket clients closed because their send queue was full.",
            registry=self.registry,
        )
        self.upstream_stream_restarts = Counter(
            "finplat_gateway_price_stream_restarts",
            "Times the shared StreamPrices upstream call was opened again after ending.",
            registry=self.registry,
        )


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): counts every HTTP response with little overhead."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # Labelled children, looked up once: `labels()` costs more than the increment itself.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get(ROUTE_KEY) or _route_path(scope)
            key = (route, scope["method"], status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    self.metrics.requests.labels(route, key[1], str(status)),
                    self.metrics.latency.labels(route, key[1]),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - start)


def _route_path(scope: Scope) -> str:
    # Gateway-owned routes (Starlette Route objects) carry their path; anything else is unmatched.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE

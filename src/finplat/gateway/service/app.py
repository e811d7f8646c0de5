"""Composition root of the gateway: settings, upstream channels, routes from the contract."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from importlib.metadata import version

import grpc
import uvicorn
from fastapi import FastAPI, Request, Response
from google.longrunning import operations_pb2  # type: ignore[import-untyped]
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import WebSocketRoute

from finance.backtest.v1 import backtest_service_pb2
from finance.market.v1 import price_service_pb2
from finplat.gateway.adapters.upstream import Upstream, UpstreamPool
from finplat.gateway.adapters.upstream_health import check_upstreams
from finplat.gateway.domain import marshal
from finplat.gateway.domain.bindings import bindings_of
from finplat.gateway.domain.openapi import openapi_document
from finplat.gateway.service.external_rules import EXTERNAL_RULES
from finplat.gateway.service.form import MethodOverride
from finplat.gateway.service.forward import Forwarder, ForwardOptions
from finplat.gateway.service.metrics import GatewayMetrics, MetricsMiddleware
from finplat.gateway.service.price_fanout import PriceFanout
from finplat.gateway.service.routes import grpc_routes
from finplat.gateway.service.settings import GatewaySettings
from finplat.gateway.service.status_to_http import GatewayError
from finplat.gateway.service.web import WebPage
from finplat.gateway.service.websocket import PriceSocket

logger = logging.getLogger(__name__)

PRICE_SERVICE = price_service_pb2.DESCRIPTOR.services_by_name["PriceService"]
BACKTEST_SERVICE = backtest_service_pb2.DESCRIPTOR.services_by_name["BacktestService"]
# The backtest service's sweep operations, at the routes googleapis annotates (/v1/operations).
OPERATIONS_SERVICE = operations_pb2.DESCRIPTOR.services_by_name["Operations"]
_DESCRIPTION = (
    "REST mapping of the finplat gRPC services, generated from their `google.api.http` "
    "annotations and compatible with grpc-gateway v2 clients. Live prices are also served "
    "over a WebSocket at `/ws/prices` (`?symbols=BTCUSDT,ETHUSDT`, `?batch=true`), and "
    "server-streaming routes answer newline-delimited JSON, or Server-Sent Events with "
    "`Accept: text/event-stream`."
)
_CODE_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    # grpc-gateway's routing error handler answers a known path under another method with
    # Unimplemented, hence 501 and not 405; the gateway's own routes behave the same.
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def default_upstreams(settings: GatewaySettings) -> list[Upstream]:
    return [
        Upstream("price", settings.price_address, (PRICE_SERVICE,)),
        Upstream("backtest", settings.backtest_address, (BACKTEST_SERVICE, OPERATIONS_SERVICE)),
    ]


def create_app_from_environment() -> FastAPI:
    """uvicorn factory for worker processes: each builds its settings from the environment."""
    return create_app(GatewaySettings())


def run(settings: GatewaySettings) -> None:
    """Serve under uvicorn (httptools, uvloop) until SIGINT/SIGTERM."""
    # Several workers need an import string; each worker process then builds its own app.
    app: FastAPI | str = (
        create_app(settings)
        if settings.workers == 1
        else "finplat.gateway.service.app:create_app_from_environment"
    )
    uvicorn.run(
        app,
        factory=settings.workers > 1,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        http="httptools",
        loop="uvloop",
        ws="websockets-sansio",
        # Compression is per connection and cannot be shared: with a thousand clients on one
        # stream it would cost more CPU than everything else the gateway does.
        ws_per_message_deflate=False,
        ws_max_size=settings.ws_max_message_bytes,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        lifespan="on",
        log_config=None,  # records go to the root logger, which the CLI set up as JSON
        access_log=False,  # /metrics counts requests; a log line each would cost throughput
        timeout_graceful_shutdown=10,
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )


def create_app(
    settings: GatewaySettings, *, upstreams: Sequence[Upstream] | None = None
) -> FastAPI:
    upstreams = list(upstreams) if upstreams is not None else default_upstreams(settings)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    metrics = GatewayMetrics()
    pool = UpstreamPool(
        upstreams,
        keepalive_time_s=settings.keepalive_time_s,
        keepalive_timeout_s=settings.keepalive_timeout_s,
        security=settings,
    )
    bindings = bindings_of(
        (service for upstream in upstreams for service in upstream.services), EXTERNAL_RULES
    )
    forwarder = Forwarder(
        pool,
        ForwardOptions(
            max_request_bytes=settings.max_request_bytes,
            default_deadline_s=settings.default_deadline_s,
            api_token=token,
            sse_keepalive_s=settings.sse_keepalive_s,
        ),
    )
    fanout = _price_fanout(upstreams, pool, settings, metrics)
    web = WebPage(settings.web_dir)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pool.open()
        fanout_task = asyncio.create_task(fanout.run()) if fanout is not None else None
        if not web.built():
            logger.warning("%s", web.missing_message().strip())
        logger.info("gateway ready", extra={"routes": len(bindings)})
        try:
            yield
        finally:
            if fanout_task is not None:
                fanout_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fanout_task
            await pool.close()

    app = FastAPI(
        title="finplat gateway",
        version=version("finplat"),
        lifespan=lifespan,
        openapi_url=None,  # the document comes from the protos, not from FastAPI's routes
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # grpc-gateway answers 404, not a redirect
        # FastAPI's built-in OpenTelemetry would open a span per request, even with no
        # exporter configured; /metrics already counts requests, and throughput matters here.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    document = marshal.dumps(
        openapi_document(
            bindings,
            title="finplat gateway",
            version=version("finplat"),
            description=_DESCRIPTION,
            bearer=token is not None,
        )
    )

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        healthy, body = await check_upstreams(pool, settings.health_timeout_s)
        return Response(marshal.dumps(body), 200 if healthy else 503, media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> Response:
        return Response(document, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        code = _CODE_BY_HTTP_STATUS.get(exc.status_code, grpc.StatusCode.UNKNOWN)
        status = 501 if exc.status_code == 405 else exc.status_code
        message = "Method Not Allowed" if exc.status_code == 405 else str(exc.detail)
        error = GatewayError(code, message, http_status=status)
        return Response(error.body(), status, media_type="application/json")

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> Response:
        logger.error("unhandled error", exc_info=exc)
        error = GatewayError(grpc.StatusCode.INTERNAL, "internal error")
        return Response(error.body(), 500, media_type="application/json")

    if fanout is not None:
        socket = PriceSocket(
            fanout,
            metrics,
            queue_frames=settings.ws_send_queue_frames,
            max_symbols=settings.ws_max_symbols,
            api_token=token,
        )
        app.router.routes.append(WebSocketRoute("/ws/prices", socket))
    # The page at `/` and Swagger UI at `/docs` (from swagger-ui-dist, not a CDN).
    app.router.routes.extend(web.routes())
    # After the gateway's own routes, which therefore win over a proto binding of the same path.
    app.router.routes.extend(grpc_routes(bindings, forwarder))
    # Inside the metrics middleware, which therefore counts a request under its routed method.
    app.add_middleware(MethodOverride, max_body_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    return app


def _price_fanout(
    upstreams: Sequence[Upstream],
    pool: UpstreamPool,
    settings: GatewaySettings,
    metrics: GatewayMetrics,
) -> PriceFanout | None:
    if not any(PRICE_SERVICE.full_name == s.full_name for u in upstreams for s in u.services):
        return None  # no price upstream, no /ws/prices
    stream_prices = PRICE_SERVICE.methods_by_name["StreamPrices"]
    return PriceFanout(
        # Looked up at each call: the pool opens its channels in the lifespan.
        lambda: pool.streams(stream_prices),
        batch_interval_s=settings.ws_batch_interval_ms / 1000,
        ping_interval_s=settings.ws_ping_interval_s,
        metrics=metrics,
    )

"""The gRPC server every service runs: its servicers, standard health, reflection, per-RPC
metrics, the token check and TLS, clean stop."""

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from finplat.core.grpc_metrics import ServerMetricsInterceptor
from finplat.core.grpc_security import ServerSecurity

logger = logging.getLogger(__name__)

# The empty name is the server's overall health in the grpc.health.v1 protocol.
OVERALL = ""


class ListingHealthServicer(HealthServicer):  # type: ignore[misc]
    """grpcio-health-checking's servicer plus the `List` call grpc.health.v1 gained in 2024
    (grpc-go serves it; the Python package does not yet), so a client such as the gateway's
    `/health` can see every dependency a service reports without knowing their names."""

    async def List(  # noqa: N802 - the protocol's method name
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        # The base class keeps the statuses here, graceful shutdown included.
        statuses = dict(self._server_status)
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in statuses.items()
            }
        )


@dataclass(frozen=True)
class ServiceBinding:
    """One servicer to expose: its full proto name and the generated `add_..._to_server`."""

    name: str
    register: Callable[[grpc.aio.Server], None]


class Health:
    """The health a service reports, per gRPC service name and overall."""

    def __init__(self, servicer: HealthServicer, names: Sequence[str]) -> None:
        self._servicer = servicer
        self._names = [OVERALL, *names]
        self._reasons: dict[str, str | None] = {}

    async def report(self, dependencies: Mapping[str, str | None]) -> None:
        """Report each dependency by name, None when it serves, else the reason it does not;
        the server as a whole serves only when all of them do.

        grpc.health.v1 has no field for a reason, so each change is logged with it: the status
        names which dependency is out, the log says why.
        """
        for name, reason in dependencies.items():
            if name in self._reasons and self._reasons[name] == reason:
                continue
            self._reasons[name] = reason
            if reason is None:
                logger.info("dependency serving", extra={"dependency": name})
            else:
                logger.warning("dependency not serving: %s", reason, extra={"dependency": name})
            await self.set_serving(reason is None, name)
        await self.set_serving(all(reason is None for reason in dependencies.values()))

    async def set_serving(self, serving: bool, name: str = OVERALL) -> None:
        """Report one service (or, by default, the whole server) as serving or not."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._servicer.set(name, status)

    async def set_all(self, serving: bool) -> None:
        """Report every service and the server as a whole."""
        for name in self._names:
            await self.set_serving(serving, name)

    async def shutting_down(self) -> None:
        """Tell watchers the server is going away, before it stops accepting calls."""
        await self._servicer.enter_graceful_shutdown()


@dataclass
class GrpcServer:
    """A started server, its bound port and its health."""

    server: grpc.aio.Server
    port: int
    health: Health

    async def stop(self, grace_s: float) -> None:
        """Fail health checks, let in-flight calls finish for `grace_s`, then stop."""
        await self.health.shutting_down()
        await self.server.stop(grace_s)
        logger.info("gRPC server stopped", extra={"port": self.port})


def _interceptors(
    security: ServerSecurity, metrics: CollectorRegistry | None
) -> list[grpc.aio.ServerInterceptor]:
    # The metrics interceptor goes first, outermost, so calls refused by the token check are
    # counted too, under UNAUTHENTICATED.
    chain: list[grpc.aio.ServerInterceptor] = []
    if metrics is not None:
        chain.append(ServerMetricsInterceptor(metrics))
    return chain + security.interceptors()


async def start_server(
    address: str,
    services: Sequence[ServiceBinding],
    security: ServerSecurity | None = None,
    metrics: CollectorRegistry | None = None,
) -> GrpcServer:
    """Bind `address` (port 0 picks a free one), register everything and start serving.

    `security` sets TLS and the bearer token (none by default); with `metrics`, per-RPC
    counters and a latency histogram (`grpc_server_*`) are registered there.
    Health starts NOT_SERVING: the composition root flips it once its dependencies are ready, so
    a load balancer or the gateway never routes to a half-started service.
    """
    security = security or ServerSecurity()
    # gRPC sets SO_REUSEPORT by default, which lets a second instance share the port silently.
    server = grpc.aio.server(
        interceptors=_interceptors(security, metrics), options=[("grpc.so_reuseport", 0)]
    )
    for service in services:
        service.register(server)
    health_servicer = ListingHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [service.name for service in services]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    credentials = security.server_credentials()
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot bind gRPC server to {address}: address in use or invalid") from exc
    await server.start()
    health = Health(health_servicer, names)
    await health.set_all(serving=False)
    logger.info(
        "gRPC server listening",
        extra={
            "address": address,
            "port": port,
            "tls": credentials is not None,
            "token_required": security.api_token is not None,
        },
    )
    return GrpcServer(server=server, port=port, health=health)

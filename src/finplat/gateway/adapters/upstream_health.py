"""`GET /health`: grpc.health.v1 Check of every upstream, 200 only when all are SERVING."""

import asyncio
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from finplat.gateway.adapters.upstream import Upstream, UpstreamPool

SERVING = health_pb2.HealthCheckResponse.ServingStatus.Name(health_pb2.HealthCheckResponse.SERVING)


async def check_upstreams(pool: UpstreamPool, timeout_s: float) -> tuple[bool, dict[str, Any]]:
    """Whether every upstream serves, and a report per upstream for the response body."""
    reports = await asyncio.gather(*(_check(pool, up, timeout_s) for up in pool.upstreams))
    healthy = all(report["status"] == SERVING for report in reports)
    body = {
        "status": SERVING if healthy else "NOT_SERVING",
        "upstreams": {up.name: report for up, report in zip(pool.upstreams, reports, strict=True)},
    }
    return healthy, body


async def _check(pool: UpstreamPool, upstream: Upstream, timeout_s: float) -> dict[str, Any]:
    stub = health_pb2_grpc.HealthStub(pool.channel(upstream.name))
    services: dict[str, str] = {}
    report: dict[str, Any] = {"address": upstream.address, "services": services}
    try:
        for service in upstream.services:
            services[service.full_name] = await _service_status(stub, service.full_name, timeout_s)
    except grpc.aio.AioRpcError as exc:
        report["status"] = exc.code().name
        report["error"] = exc.details() or ""
        return report
    statuses = set(services.values())
    report["status"] = SERVING if statuses <= {SERVING} else "NOT_SERVING"
    return report


async def _service_status(stub: health_pb2_grpc.HealthStub, service: str, timeout_s: float) -> str:
    try:
        response = await stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        # The server does not report this service by name: its overall ("") status stands in.
        response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return name

"""`GET /health`: the grpc.health.v1 status of every upstream, 200 only when all serve.

An upstream serves when its overall status (the empty name) and each of its mapped services
do. The overall status is where our services fold in every dependency they need (Kafka, the
registry, Redis, InfluxDB, the feed); the body lists those by name, from the health `List`
call, so a 503 says which one is out.
"""

import asyncio
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from finplat.gateway.adapters.upstream import Upstream, UpstreamPool

SERVING = health_pb2.HealthCheckResponse.ServingStatus.Name(health_pb2.HealthCheckResponse.SERVING)
_OVERALL = ""


async def check_upstreams(pool: UpstreamPool, timeout_s: float) -> tuple[bool, dict[str, Any]]:
    """Whether every upstream serves, and a report per upstream for the response body."""
    mapped = {service.full_name for up in pool.upstreams for service in up.services}
    reports = await asyncio.gather(*(_check(pool, up, mapped, timeout_s) for up in pool.upstreams))
    healthy = all(report["status"] == SERVING for report in reports)
    body = {
        "status": SERVING if healthy else "NOT_SERVING",
        "upstreams": {up.name: report for up, report in zip(pool.upstreams, reports, strict=True)},
    }
    return healthy, body


async def _check(
    pool: UpstreamPool, upstream: Upstream, mapped: set[str], timeout_s: float
) -> dict[str, Any]:
    stub = health_pb2_grpc.HealthStub(pool.channel(upstream.name))
    services: dict[str, str] = {}
    report: dict[str, Any] = {"address": upstream.address, "services": services}
    try:
        # No overall status at all: the mapped services' statuses decide alone.
        overall = await _status(stub, _OVERALL, timeout_s) or SERVING
        for service in upstream.services:
            found = await _status(stub, service.full_name, timeout_s)
            # A server that does not report a service by name: its overall status stands in.
            services[service.full_name] = overall if found is None else found
        dependencies = await _dependencies(stub, mapped, timeout_s)
    except grpc.aio.AioRpcError as exc:
        report["status"] = exc.code().name
        report["error"] = exc.details() or ""
        return report
    if dependencies:
        report["dependencies"] = dependencies
    statuses = {overall, *services.values()}
    report["status"] = SERVING if statuses <= {SERVING} else "NOT_SERVING"
    return report


async def _status(stub: health_pb2_grpc.HealthStub, service: str, timeout_s: float) -> str | None:
    """The status of `service`, or None when the server does not know the name."""
    try:
        response = await stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return None
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return name


async def _dependencies(
    stub: health_pb2_grpc.HealthStub, mapped: set[str], timeout_s: float
) -> dict[str, str]:
    """Every other name the server reports (its dependencies); none from a server without
    the `List` call (added to grpc.health.v1 in 2024)."""
    try:
        listed = await stub.List(health_pb2.HealthListRequest(), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        return {}
    return {
        name: health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        for name, response in sorted(listed.statuses.items())
        if name != _OVERALL and name not in mapped
    }

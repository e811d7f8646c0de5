"""Readiness probes that ask each process a real question, not merely whether a port is open.

Each probe raises NotReadyError with the reason while the process is not ready yet.
"""

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from finplat.platform.errors import PlatformError

_SERVING = health_pb2.HealthCheckResponse.SERVING


class NotReadyError(PlatformError):
    """One probe failed; the supervisor retries until its deadline."""


def grpc_serving(address: str, timeout_s: float) -> None:
    """The gRPC server at `address` answers grpc.health.v1 Check("") with SERVING."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise NotReadyError(f"gRPC health of {address}: {exc.code().name}") from exc
    if response.status != _SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        raise NotReadyError(f"gRPC health of {address}: {name}")


def http_ok(url: str, timeout_s: float) -> None:
    """GET `url` answers 200."""
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise NotReadyError(f"GET {url}: {type(exc).__name__}") from exc
    if response.status_code != httpx.codes.OK:
        raise NotReadyError(f"GET {url}: HTTP {response.status_code} {response.text[:200]}")

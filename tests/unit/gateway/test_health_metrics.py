"""`GET /health` from the upstreams' grpc.health.v1, and `GET /metrics` for Prometheus."""

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from google.protobuf import descriptor
from grpc_health.v1 import health_pb2
from websockets.asyncio.client import connect

from finplat.gateway.service.app import create_app
from finplat.stack.process import free_ports
from tests.unit.gateway.conftest import serve, settings, upstreams_at
from tests.unit.gateway.fakes import FakeUpstream

pytestmark = pytest.mark.asyncio(loop_scope="module")


def unused_address() -> str:
    return f"127.0.0.1:{free_ports()[0]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dead_upstream_url(thing_service: descriptor.ServiceDescriptor) -> AsyncIterator[str]:
    app = create_app(
        settings(health_timeout_s=0.5), upstreams=upstreams_at(unused_address(), thing_service)
    )
    async with serve(app) as url:
        yield url


async def test_health_is_200_when_every_upstream_serves(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "SERVING"
    assert body["upstreams"]["price"] == {
        "address": upstream.address,
        "services": {"finance.market.v1.PriceService": "SERVING"},
        "status": "SERVING",
    }
    assert set(body["upstreams"]) == {"price", "backtest", "things"}


async def test_health_is_503_when_a_service_does_not_serve(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    name = "finance.backtest.v1.BacktestService"
    upstream.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        response = await client.get("/health")
    finally:
        upstream.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "NOT_SERVING"
    assert body["upstreams"]["backtest"]["services"] == {
        name: "NOT_SERVING",
        "google.longrunning.Operations": "SERVING",
    }
    assert body["upstreams"]["price"]["status"] == "SERVING"


async def test_health_is_503_naming_the_dependency_when_a_service_reports_one_out(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    # What the price service does while no Kafka broker is reachable: the dependency by name,
    # and the server as a whole, not serving; its API's own name still serving.
    upstream.health.set("finplat.price.kafka", health_pb2.HealthCheckResponse.NOT_SERVING)
    upstream.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        response = await client.get("/health")
    finally:
        upstream.health.set("", health_pb2.HealthCheckResponse.SERVING)
        upstream.health.set("finplat.price.kafka", health_pb2.HealthCheckResponse.SERVING)
    recovered = await client.get("/health")

    assert response.status_code == 503
    price = response.json()["upstreams"]["price"]
    assert price["status"] == "NOT_SERVING"
    assert price["services"] == {"finance.market.v1.PriceService": "SERVING"}
    assert price["dependencies"] == {"finplat.price.kafka": "NOT_SERVING"}
    assert recovered.status_code == 200
    assert recovered.json()["upstreams"]["price"]["dependencies"] == {
        "finplat.price.kafka": "SERVING"
    }


async def test_health_is_503_when_an_upstream_is_down(dead_upstream_url: str) -> None:
    async with httpx.AsyncClient(base_url=dead_upstream_url) as http:
        response = await http.get("/health")

    assert response.status_code == 503
    assert response.json()["upstreams"]["price"]["status"] in {"UNAVAILABLE", "DEADLINE_EXCEEDED"}


async def test_calls_to_a_down_upstream_are_503_unavailable(dead_upstream_url: str) -> None:
    async with httpx.AsyncClient(base_url=dead_upstream_url) as http:
        response = await http.get("/api/prices/BTCUSDT")

    assert response.status_code == 503
    assert response.json()["code"] == 14


async def test_metrics_count_requests_by_route_method_and_status(client: httpx.AsyncClient) -> None:
    await client.get("/api/prices/BTCUSDT")
    await client.get("/api/prices/NOPE")
    await client.get("/no/such/route")

    text = (await client.get("/metrics")).text

    route = 'method="GET",route="/api/prices/{symbol}"'
    assert f'finplat_gateway_http_requests_total{{{route},status="200"}} 1.0' in text
    assert f'finplat_gateway_http_requests_total{{{route},status="404"}} 1.0' in text
    assert (
        'finplat_gateway_http_requests_total{method="GET",route="unmatched",status="404"} 1.0'
        in text
    )
    assert (
        'finplat_gateway_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/prices/{symbol}"}'
        in text
    )


async def test_metrics_gauge_open_websockets(client: httpx.AsyncClient, gateway_url: str) -> None:
    async with connect(gateway_url.replace("http", "ws") + "/ws/prices"):
        during = (await client.get("/metrics")).text
    assert "finplat_gateway_websockets_open 1.0" in during

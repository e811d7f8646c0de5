"""API token: the gateway's 401 and the services' BearerTokenInterceptor, end to end."""

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
import pytest_asyncio
from google.protobuf import descriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from finance.market.v1 import price_service_pb2, price_service_pb2_grpc
from finplat.core.auth import BearerTokenInterceptor
from finplat.gateway.service.app import create_app
from tests.unit.gateway.conftest import serve, settings, upstreams_at
from tests.unit.gateway.fakes import FakeUpstream, start_fake_upstream

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "s3cret-token"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def guarded_upstream(
    thing_service: descriptor.ServiceDescriptor,
) -> AsyncIterator[FakeUpstream]:
    fakes = await start_fake_upstream(thing_service, [BearerTokenInterceptor(SecretStr(TOKEN))])
    yield fakes
    await fakes.server.stop(grace=None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def guarded_url(
    guarded_upstream: FakeUpstream, thing_service: descriptor.ServiceDescriptor
) -> AsyncIterator[str]:
    app = create_app(
        settings(api_token=SecretStr(TOKEN)),
        upstreams=upstreams_at(guarded_upstream.address, thing_service),
    )
    async with serve(app) as url:
        yield url


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no Authorization"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong token"),
        pytest.param({"Authorization": TOKEN}, id="token without the Bearer scheme"),
    ],
)
async def test_gateway_rejects_requests_without_the_token(
    guarded_url: str, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=guarded_url) as http:
        response = await http.get("/api/prices/BTCUSDT", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "code": 16,
        "message": "missing or invalid bearer token",
        "details": [],
    }


async def test_token_passes_the_gateway_and_the_service_interceptor(guarded_url: str) -> None:
    async with httpx.AsyncClient(base_url=guarded_url) as http:
        response = await http.get(
            "/api/prices/BTCUSDT", headers={"Authorization": f"Bearer {TOKEN}"}
        )

    assert response.status_code == 200
    assert response.json()["symbol"] == "BTCUSDT"


@pytest.mark.parametrize("path", ["/health", "/metrics", "/openapi.json", "/docs"])
async def test_gateway_routes_stay_open(guarded_url: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=guarded_url) as http:
        response = await http.get(path)

    assert response.status_code == 200


async def test_openapi_declares_the_bearer_scheme(guarded_url: str) -> None:
    async with httpx.AsyncClient(base_url=guarded_url) as http:
        document = (await http.get("/openapi.json")).json()

    assert document["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    assert document["security"] == [{"bearer": []}]


async def test_websocket_handshake_without_the_token_is_401(guarded_url: str) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(guarded_url.replace("http", "ws") + "/ws/prices"):
            pass

    assert caught.value.response.status_code == 401


@pytest.mark.parametrize(
    ("suffix", "headers"),
    [
        pytest.param("", {"Authorization": f"Bearer {TOKEN}"}, id="Authorization header"),
        pytest.param(f"?access_token={TOKEN}", {}, id="access_token query parameter for browsers"),
    ],
)
async def test_websocket_with_the_token_is_accepted(
    guarded_url: str, suffix: str, headers: dict[str, str]
) -> None:
    url = guarded_url.replace("http", "ws") + "/ws/prices" + suffix
    async with connect(url, additional_headers=headers) as ws:
        await ws.send('{"action": "subscribe", "symbols": ["BTCUSDT"]}')
        reply = await ws.recv()

    assert "subscribed" in reply


async def test_interceptor_rejects_unary_and_streaming_calls_without_the_token(
    guarded_upstream: FakeUpstream,
) -> None:
    guarded_upstream.recorder.requests.clear()
    async with grpc.aio.insecure_channel(guarded_upstream.address) as channel:
        stub = price_service_pb2_grpc.PriceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await stub.GetPrice(price_service_pb2.GetPriceRequest(symbol="BTCUSDT"))
        with pytest.raises(grpc.aio.AioRpcError) as streaming:
            async for _ in stub.StreamPrices(price_service_pb2.StreamPricesRequest()):
                pass

    assert unary.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert streaming.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert guarded_upstream.recorder.requests == []


async def test_interceptor_accepts_the_token(guarded_upstream: FakeUpstream) -> None:
    async with grpc.aio.insecure_channel(guarded_upstream.address) as channel:
        stub = price_service_pb2_grpc.PriceServiceStub(channel)
        response = await stub.GetPrice(
            price_service_pb2.GetPriceRequest(symbol="BTCUSDT"),
            metadata=(("authorization", f"Bearer {TOKEN}"),),
        )

    assert response.price.symbol == "BTCUSDT"


async def test_interceptor_leaves_health_open(guarded_upstream: FakeUpstream) -> None:
    async with grpc.aio.insecure_channel(guarded_upstream.address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())

    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_interceptor_leaves_unknown_methods_unimplemented(
    guarded_upstream: FakeUpstream,
) -> None:
    async with grpc.aio.insecure_channel(guarded_upstream.address) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/nope.Service/Nothing"
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"")

    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED

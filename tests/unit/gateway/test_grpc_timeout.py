"""`Grpc-Timeout` as the upstream call's deadline, as grpc-gateway's AnnotateContext sets it.

When the deadline runs out, grpc-go fails the call with its context's error, so grpc-gateway
answers 504 with {"code": 4, "message": "context deadline exceeded", "details": []}.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from google.protobuf import descriptor

from finplat.gateway.service.app import create_app
from tests.unit.gateway.conftest import serve, settings, upstreams_at
from tests.unit.gateway.fakes import FakeUpstream, price

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEADLINE_EXCEEDED = {"code": 4, "message": "context deadline exceeded", "details": []}


@pytest.mark.parametrize(
    ("grpc_timeout", "at_least_s"),
    [
        pytest.param("200m", 0.19, id="milliseconds"),
        pytest.param("300000u", 0.29, id="microseconds"),
        pytest.param("10u", 0.0, id="ten microseconds"),
        pytest.param("-1S", 0.0, id="negative: already passed"),
    ],
)
async def test_slow_upstream_is_cut_off_at_the_grpc_timeout_with_504(
    client: httpx.AsyncClient, grpc_timeout: str, at_least_s: float
) -> None:
    started = time.monotonic()

    response = await client.get("/v1/sleep/5000", headers={"Grpc-Timeout": grpc_timeout})

    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/json"
    assert response.json() == DEADLINE_EXCEEDED
    assert at_least_s <= elapsed < 2  # the fake would answer after 5 s


async def test_upstreams_own_deadline_exceeded_keeps_its_message(
    client: httpx.AsyncClient,
) -> None:
    # The gateway's context is still live: grpc-go passes the upstream's status on as it is.
    response = await client.get(
        "/v1/fail/4", params={"message": "downstream too slow"}, headers={"Grpc-Timeout": "5S"}
    )

    assert response.status_code == 504
    assert response.json() == {"code": 4, "message": "downstream too slow", "details": []}


async def test_invalid_grpc_timeout_is_400_before_the_body_is_looked_at(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    response = await client.post(
        "/v1/things/abc:archive", content=b"{", headers={"Grpc-Timeout": "1.5S"}
    )

    assert response.status_code == 400
    assert response.json() == {"code": 3, "message": "invalid grpc-timeout: 1.5S", "details": []}
    assert upstream.recorder.requests == []


async def test_deadline_runs_from_before_the_body_is_read(client: httpx.AsyncClient) -> None:
    async def slow_body() -> AsyncIterator[bytes]:
        await asyncio.sleep(0.3)
        yield b'{"reason": "late"}'

    response = await client.post(
        "/v1/things/abc:archive", content=slow_body(), headers={"Grpc-Timeout": "100m"}
    )

    assert response.status_code == 504
    assert response.json() == DEADLINE_EXCEEDED


async def test_stream_ends_with_the_deadline_error_after_its_messages(
    gateway_url: str, upstream: FakeUpstream
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        request = http.build_request("GET", "/api/prices:stream", headers={"Grpc-Timeout": "500m"})
        sending = asyncio.create_task(http.send(request, stream=True))
        async with asyncio.timeout(5):
            await upstream.price.wait_for_streams(1)
        upstream.price.publish(price("BTCUSDT"))
        response = await sending
        lines = [json.loads(line) async for line in response.aiter_lines()]

    assert response.status_code == 200
    assert lines[0]["result"]["prices"][0]["symbol"] == "BTCUSDT"
    assert lines[1:] == [{"error": DEADLINE_EXCEEDED}]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def short_default_url(
    upstream: FakeUpstream, thing_service: descriptor.ServiceDescriptor
) -> AsyncIterator[str]:
    app = create_app(
        settings(default_deadline_s=0.1), upstreams=upstreams_at(upstream.address, thing_service)
    )
    async with serve(app) as url:
        yield url


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 504, id="no header: the gateway's default deadline"),
        pytest.param({"Grpc-Timeout": ""}, 504, id="empty header: as if absent"),
        pytest.param({"Grpc-Timeout": "0S"}, 200, id="0S: no deadline at all"),
        pytest.param({"Grpc-Timeout": "5S"}, 200, id="the header wins over the default"),
        pytest.param({"Grpc-Timeout": "9223372036854775807n"}, 200, id="the largest time.Duration"),
        pytest.param(
            {"Grpc-Timeout": "2562048H"}, 504, id="an overflowing one wraps to a passed deadline"
        ),
    ],
)
async def test_grpc_timeout_against_the_default_deadline(
    short_default_url: str, headers: dict[str, str], status: int
) -> None:
    async with httpx.AsyncClient(base_url=short_default_url, timeout=10) as http:
        response = await http.get("/v1/sleep/400", headers=headers)

    assert response.status_code == status

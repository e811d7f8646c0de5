"""Server-streaming routes: grpc-gateway's newline-delimited envelopes, and Server-Sent Events."""

import asyncio
import json

import grpc
import httpx
import pytest
from google.protobuf import descriptor

from finplat.gateway.service.app import create_app
from tests.unit.gateway.conftest import serve, settings, upstreams_at
from tests.unit.gateway.fakes import FakeUpstream, price

pytestmark = pytest.mark.asyncio(loop_scope="module")


def lines(response: httpx.Response) -> list[dict[str, object]]:
    return [json.loads(line) for line in response.text.splitlines()]


async def test_each_message_is_a_result_line(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things:watch", params={"count": 2})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    results = lines(response)
    assert [r["result"]["seq"] for r in results] == [0, 1]  # type: ignore[index]
    assert results[1]["result"]["thing"]["i64"] == "1"  # type: ignore[index]


async def test_response_body_applies_to_every_message(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things:watchThings", params={"count": 1})

    assert lines(response)[0]["result"]["name"] == "things/0"  # type: ignore[index]


async def test_failure_after_messages_ends_the_200_stream_with_an_error_line(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/things:watch", params={"count": 1, "fail_code": 14})

    assert response.status_code == 200
    assert lines(response)[-1] == {"error": {"code": 14, "message": "watch failed", "details": []}}


async def test_failure_before_any_message_sets_the_http_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things:watch", params={"count": 0, "fail_code": 7})

    assert response.status_code == 403
    assert lines(response) == [{"error": {"code": 7, "message": "watch failed", "details": []}}]


async def test_empty_stream_is_an_empty_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things:watch", params={"count": 0})

    assert response.status_code == 200
    assert response.text == ""


async def test_stream_prices_route_with_custom_verb(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    upstream.price.stream_script = [price("BTCUSDT"), price("ETHUSDT")]

    response = await client.get("/api/prices:stream", params={"symbols": "BTCUSDT"})

    symbols = [r["result"]["prices"][0]["symbol"] for r in lines(response)]  # type: ignore[index]
    assert symbols == ["BTCUSDT", "ETHUSDT"]
    assert list(upstream.recorder.requests[-1].symbols) == ["BTCUSDT"]


async def test_event_stream_is_served_when_accepted(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    upstream.price.stream_script = [price("BTCUSDT"), grpc.StatusCode.UNAVAILABLE]

    response = await client.get("/api/prices:stream", headers={"Accept": "text/event-stream"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(e.removeprefix("data: ")) for e in response.text.split("\n\n") if e]
    assert events[0]["result"]["prices"][0]["symbol"] == "BTCUSDT"
    assert events[1] == {"error": {"code": 14, "message": "stream failed", "details": []}}


async def test_client_going_away_cancels_the_upstream_stream(
    gateway_url: str, upstream: FakeUpstream
) -> None:
    upstream.price.streams_cancelled.clear()
    async with httpx.AsyncClient(base_url=gateway_url) as http:
        # Headers come with the first message, as in grpc-gateway: send, then publish.
        sending = asyncio.create_task(
            http.send(http.build_request("GET", "/api/prices:stream"), stream=True)
        )
        async with asyncio.timeout(5):
            await upstream.price.wait_for_streams(1)
        upstream.price.publish(price("BTCUSDT"))
        response = await sending
        first = await anext(response.aiter_lines())
        assert json.loads(first)["result"]["prices"][0]["symbol"] == "BTCUSDT"
        await response.aclose()

    async with asyncio.timeout(5):
        await upstream.price.streams_cancelled.wait()
    assert upstream.price.active_streams == 0


async def test_quiet_event_streams_get_keepalive_comments(
    upstream: FakeUpstream, thing_service: descriptor.ServiceDescriptor
) -> None:
    app = create_app(
        settings(sse_keepalive_s=0.05), upstreams=upstreams_at(upstream.address, thing_service)
    )
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        request = http.build_request(
            "GET", "/api/prices:stream", headers={"Accept": "text/event-stream"}
        )
        sending = asyncio.create_task(http.send(request, stream=True))
        async with asyncio.timeout(5):
            await upstream.price.wait_for_streams(1)
        upstream.price.publish(price("BTCUSDT"))
        response = await sending
        lines = response.aiter_lines()
        assert (await anext(lines)).startswith("data: ")
        assert await anext(lines) == ""
        assert await anext(lines) == ": keepalive"  # nothing published since: a comment line
        await response.aclose()

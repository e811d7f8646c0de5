"""`/ws/prices` behind several price-service instances: the shared upstream call moves to the
next one when its instance dies, resuming after the last update relayed of each symbol."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
import pytest_asyncio
from google.protobuf import descriptor
from websockets.asyncio.client import connect

from finplat.gateway.adapters.upstream import Upstream
from finplat.gateway.service.app import PRICE_SERVICE, create_app
from tests.unit.gateway.conftest import serve, settings
from tests.unit.gateway.fakes import FakeUpstream, price, start_fake_upstream
from tests.unit.gateway.test_websocket import frame

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def instances(
    thing_service: descriptor.ServiceDescriptor,
) -> AsyncIterator[tuple[FakeUpstream, FakeUpstream]]:
    first, second = [await start_fake_upstream(thing_service) for _ in range(2)]
    yield first, second
    for fakes in (first, second):
        fakes.price.stream_script = None
        await fakes.server.stop(grace=None)


@asynccontextmanager
async def _gateway(*addresses: str) -> AsyncIterator[str]:
    """A gateway whose price upstream has `addresses`; its WebSocket base URL."""
    app = create_app(
        settings(ws_ping_interval_s=30),
        upstreams=[Upstream("price", ",".join(addresses), (PRICE_SERVICE,))],
    )
    async with serve(app) as url:
        yield url.replace("http://", "ws://")


async def test_the_stream_moves_to_the_next_instance_and_resumes_where_it_was(
    instances: tuple[FakeUpstream, FakeUpstream],
) -> None:
    first, second = instances
    async with (
        _gateway(first.address, second.address) as url,
        connect(f"{url}/ws/prices?symbols=BTCUSDT") as ws,
    ):
        await frame(ws)
        async with asyncio.timeout(5):
            await first.price.wait_for_streams(1)
        relayed = price("BTCUSDT", "1.5")
        first.price.publish(relayed)
        assert (await frame(ws))["price"] == "1.5"

        await first.server.stop(grace=None)  # the instance dies, its calls with it

        assert (await frame(ws))["type"] == "error"
        async with asyncio.timeout(5):
            await second.price.wait_for_streams(1)
        assert list(second.recorder.requests[-1].resume_after) == [relayed]
        second.price.publish(price("BTCUSDT", "2.5"))
        assert (await frame(ws))["price"] == "2.5"


async def test_a_refused_position_is_dropped_and_the_stream_reopened_live(
    instances: tuple[FakeUpstream, FakeUpstream],
) -> None:
    upstream, _ = instances
    async with (
        _gateway(upstream.address) as url,
        connect(f"{url}/ws/prices?symbols=BTCUSDT") as ws,
    ):
        await frame(ws)
        async with asyncio.timeout(5):
            await upstream.price.wait_for_streams(1)
        upstream.price.publish(price("BTCUSDT", "1.5"))
        await frame(ws)

        # The next calls are refused, as a service refuses a position too far back.
        upstream.price.stream_script = [grpc.StatusCode.OUT_OF_RANGE]
        upstream.price.publish(grpc.StatusCode.UNAVAILABLE)
        notices = [(await frame(ws))["message"] for _ in range(3)]
        async with asyncio.timeout(5):
            await upstream.price.wait_for_opened(3)

    assert notices == [
        "price stream interrupted; reconnecting",
        "price stream could not resume; updates were missed",
        "price stream interrupted; reconnecting",
    ]
    opened = upstream.recorder.requests
    assert [len(request.resume_after) for request in opened[:3]] == [0, 1, 0]

"""Fixtures: the test proto, a real grpc.aio server of fakes, and the gateway under uvicorn."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI
from google.protobuf import descriptor

from finplat.gateway.adapters.upstream import Upstream
from finplat.gateway.service.app import (
    BACKTEST_SERVICE,
    OPERATIONS_SERVICE,
    PRICE_SERVICE,
    create_app,
)
from finplat.gateway.service.settings import GatewaySettings
from tests.unit.gateway.fakes import FakeUpstream, start_fake_upstream
from tests.unit.gateway.testproto import compile_into_default_pool


@pytest.fixture(scope="session")
def thing_service(tmp_path_factory: pytest.TempPathFactory) -> descriptor.ServiceDescriptor:
    return compile_into_default_pool(Path(tmp_path_factory.mktemp("proto")))


def upstreams_at(address: str, thing_service: descriptor.ServiceDescriptor) -> list[Upstream]:
    # Three upstreams, as deployed, though the fakes share one server here.
    return [
        Upstream("price", address, (PRICE_SERVICE,)),
        Upstream("backtest", address, (BACKTEST_SERVICE, OPERATIONS_SERVICE)),
        Upstream("things", address, (thing_service,)),
    ]


# A stand-in for the built front end (web/dist), so these tests never depend on `make install`.
FAKE_WEB_DIR = Path(__file__).parent / "web_dist"


def settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings(**{"port": 0, "web_dir": FAKE_WEB_DIR, **overrides})


@contextlib.asynccontextmanager
async def serve(app: FastAPI, **config: Any) -> AsyncIterator[str]:
    """Run `app` under uvicorn on a free loopback port in this event loop; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
            **config,
        )
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream(thing_service: descriptor.ServiceDescriptor) -> AsyncIterator[FakeUpstream]:
    fakes = await start_fake_upstream(thing_service)
    yield fakes
    await fakes.server.stop(grace=None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway_url(
    upstream: FakeUpstream, thing_service: descriptor.ServiceDescriptor
) -> AsyncIterator[str]:
    app = create_app(settings(), upstreams=upstreams_at(upstream.address, thing_service))
    async with serve(app) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def client(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        yield http


@pytest.fixture(autouse=True)
def fresh_recorder(request: pytest.FixtureRequest) -> None:
    # Tests share a module's fakes; each starts with an empty record and default behaviour.
    if "upstream" in request.fixturenames:
        fakes: FakeUpstream = request.getfixturevalue("upstream")
        fakes.recorder.requests.clear()
        fakes.recorder.metadata.clear()
        fakes.price.stream_script = None

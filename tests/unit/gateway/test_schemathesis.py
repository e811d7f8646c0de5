"""Property-based API tests: schemathesis generates requests from /openapi.json.

The gateway runs (with the fakes) in a thread with its own event loop, because schemathesis'
pytest integration calls the API synchronously. Checks: no 5xx, and status codes, content
types, headers and bodies as documented. Left out on purpose, because grpc-gateway behaves
otherwise and clients rely on it: `unsupported_method` (grpc-gateway answers 501, not 405),
`negative_data_rejection` (unknown query parameters are ignored, enums accept numbers, both
field names are accepted) and `positive_data_acceptance` (the fakes reject unknown ids).
"""

import asyncio
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from google.protobuf import descriptor
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks as openapi_checks
from starlette.testclient import TestClient

from finplat.gateway.service.app import create_app, default_upstreams
from tests.unit.gateway import conftest
from tests.unit.gateway.fakes import price, start_fake_upstream


def no_server_error_but_grpc_gateway_501(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """not_a_server_error, except grpc-gateway's answer to an undocumented method.

    grpc-gateway's routing error handler turns a known path under another method into
    Unimplemented (501) with message "Method Not Allowed"; that is the contract, not a crash.
    """
    if response.status_code == 501 and response.json() == {
        "code": 12,
        "message": "Method Not Allowed",
        "details": [],
    }:
        return True
    return schemathesis.checks.not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error_but_grpc_gateway_501,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_gateway(thing_service: descriptor.ServiceDescriptor) -> Iterator[str]:
    ready: queue.Queue[tuple[str, asyncio.AbstractEventLoop, asyncio.Event]] = queue.Queue()

    async def main() -> None:
        stop = asyncio.Event()
        fakes = await start_fake_upstream(thing_service)
        # One message, then the end: a stream schemathesis can read as one JSON document.
        fakes.price.stream_script = [price("BTCUSDT")]
        gateway_settings = conftest.settings(
            price_address=fakes.address, backtest_address=fakes.address
        )
        app = create_app(gateway_settings, upstreams=default_upstreams(gateway_settings))
        async with conftest.serve(app) as url:
            ready.put((url, asyncio.get_running_loop(), stop))
            await stop.wait()
        await fakes.server.stop(grace=None)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    url, loop, stop = ready.get(timeout=30)
    yield url
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)


def served_document() -> dict[str, Any]:
    """The document the gateway serves, read without starting it (no lifespan, no upstreams)."""
    with TestClient(create_app(conftest.settings())) as http:
        document: dict[str, Any] = http.get("/openapi.json").json()
    return document


# Loaded at collection so that schemathesis can parametrize the test by operation.
schema = schemathesis.openapi.from_dict(served_document())


@schema.parametrize()
@settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(
    case: schemathesis.Case[Any], live_gateway: str
) -> None:
    case.call_and_validate(base_url=live_gateway, checks=CHECKS, timeout=10)

"""TLS at both ends of the gateway: `finplat gateway serve` speaks HTTPS with its certificate
and dials a TLS upstream trusting a CA, as a process started with the settings an operator sets.
Certificates are made here by trustme; the upstream is the fake one of these tests."""

import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import pytest_asyncio
from google.protobuf import descriptor

from finplat.stack.process import free_ports
from tests.support import eventually_async, write_certificates
from tests.unit.gateway.fakes import FakeUpstream, start_fake_upstream

pytestmark = pytest.mark.asyncio(loop_scope="module")

_SERVE = (
    "from finplat.core.logging import configure_logging; configure_logging('INFO'); "
    "from finplat.gateway.cli import gateway; gateway(['serve'])"
)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return write_certificates(tmp_path_factory.mktemp("tls"), "127.0.0.1", "localhost")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tls_upstream(
    thing_service: descriptor.ServiceDescriptor, certificates: tuple[Path, Path, Path]
) -> AsyncIterator[FakeUpstream]:
    _, chain, key = certificates
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), chain.read_bytes())])
    fakes = await start_fake_upstream(thing_service, credentials=credentials)
    yield fakes
    await fakes.server.stop(grace=None)


def _gateway(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_ports()[0]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVE],
            env={**os.environ, "FINPLAT_GATEWAY_PORT": str(port), **env},
            stdout=sink,
            stderr=sink,
        )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def gateway_address(
    tls_upstream: FakeUpstream,
    certificates: tuple[Path, Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    ca, chain, key = certificates
    env = {
        "FINPLAT_GATEWAY_TLS_CERT_FILE": str(chain),
        "FINPLAT_GATEWAY_TLS_KEY_FILE": str(key),
        "FINPLAT_GATEWAY_TLS_CA_FILE": str(ca),
        "FINPLAT_GATEWAY_PRICE_ADDRESS": tls_upstream.address,
        "FINPLAT_GATEWAY_BACKTEST_ADDRESS": tls_upstream.address,
    }
    yield from _gateway(env, tmp_path_factory.mktemp("gateway") / "gateway.log")


async def _get(url: str, ca: Path | None) -> httpx.Response | None:
    """GET trusting `ca` (None: the system's CAs); None when the connection fails."""
    verify = ssl.create_default_context(cafile=str(ca)) if ca else True
    try:
        async with httpx.AsyncClient(verify=verify, timeout=5) as client:
            return await client.get(url)
    except httpx.ConnectError:
        return None


async def _answered(url: str, ca: Path | None) -> httpx.Response:
    """The first answer to GET `url` once the gateway process accepts connections."""
    answers: list[httpx.Response] = []

    async def answered() -> bool:
        response = await _get(url, ca)
        answers.extend([response] if response is not None else [])
        return bool(answers)

    await eventually_async(answered, 30, interval_s=0.2)
    return answers[0]


async def test_https_with_the_ca_reaches_a_tls_upstream(
    gateway_address: str, certificates: tuple[Path, Path, Path]
) -> None:
    ca, _, _ = certificates

    response = await _answered(f"https://{gateway_address}/api/prices/BTCUSDT", ca)

    assert response.status_code == 200, response.text
    assert response.json()["price"] == "67012.34000000"


async def test_plain_http_and_an_untrusting_client_are_refused(
    gateway_address: str, certificates: tuple[Path, Path, Path]
) -> None:
    ca, _, _ = certificates
    await _answered(f"https://{gateway_address}/health", ca)

    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(httpx.HTTPError):  # the port speaks TLS: plain HTTP gets no answer
            await client.get(f"http://{gateway_address}/health")
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://{gateway_address}/health")  # the system's CAs only


async def test_without_the_ca_the_gateway_cannot_reach_a_tls_upstream(
    tls_upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = {
        "FINPLAT_GATEWAY_PRICE_ADDRESS": tls_upstream.address,
        "FINPLAT_GATEWAY_BACKTEST_ADDRESS": tls_upstream.address,
        "FINPLAT_GATEWAY_DEFAULT_DEADLINE_S": "3",
    }
    for address in _gateway(env, tmp_path / "gateway.log"):
        response = await _answered(f"http://{address}/api/prices/BTCUSDT", None)

    assert response.status_code == 503
    assert response.json()["code"] == grpc.StatusCode.UNAVAILABLE.value[0]

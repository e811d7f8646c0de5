"""The doors of every gRPC server: the bearer token, TLS, and per-RPC metrics, on a real server.

The certificates are made here by trustme: a CA of the test's own and a certificate for
127.0.0.1 and localhost signed by it.
"""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

from finance.market.v1 import price_service_pb2, price_service_pb2_grpc
from finplat.core.grpc_security import ChannelSecurity, ServerSecurity
from finplat.core.grpc_server import GrpcServer, ServiceBinding, start_server
from finplat.core.health_cli import health
from tests.support import write_certificates

TOKEN = "door-key"
SERVICE = "finance.market.v1.PriceService"


class _ScriptedPriceService(price_service_pb2_grpc.PriceServiceServicer):
    """Answers GetPrice for BTCUSDT, NOT_FOUND otherwise; streams two messages; the other
    methods answer UNIMPLEMENTED (the generated base)."""

    async def GetPrice(  # noqa: N802 - the generated method name
        self,
        request: price_service_pb2.GetPriceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> price_service_pb2.GetPriceResponse:
        if request.symbol != "BTCUSDT":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no price for {request.symbol}")
        return price_service_pb2.GetPriceResponse()

    async def StreamPrices(  # noqa: N802 - the generated method name
        self,
        request: price_service_pb2.StreamPricesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[price_service_pb2.StreamPricesResponse]:
        for _ in range(2):
            yield price_service_pb2.StreamPricesResponse()


def _binding() -> ServiceBinding:
    servicer = _ScriptedPriceService()  # type: ignore[abstract]
    return ServiceBinding(
        SERVICE,
        lambda server: price_service_pb2_grpc.add_PriceServiceServicer_to_server(servicer, server),
    )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA file, server certificate chain, server key) for 127.0.0.1 and localhost."""
    return write_certificates(tmp_path_factory.mktemp("tls"), "127.0.0.1", "localhost")


async def _get_price(
    channel: grpc.aio.Channel, symbol: str = "BTCUSDT", token: str | None = None
) -> grpc.StatusCode:
    stub = price_service_pb2_grpc.PriceServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    try:
        await stub.GetPrice(
            price_service_pb2.GetPriceRequest(symbol=symbol), metadata=metadata, timeout=5
        )
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _stream(channel: grpc.aio.Channel, token: str | None = None) -> grpc.StatusCode:
    stub = price_service_pb2_grpc.PriceServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    try:
        async for _ in stub.StreamPrices(
            price_service_pb2.StreamPricesRequest(), metadata=metadata, timeout=5
        ):
            pass
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _health(channel: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _serve(security: ServerSecurity, metrics: CollectorRegistry | None = None) -> GrpcServer:
    return await start_server("127.0.0.1:0", [_binding()], security, metrics)


@pytest.mark.asyncio
async def test_a_call_without_the_token_is_refused_and_one_with_it_served() -> None:
    server = await _serve(ServerSecurity(api_token=SecretStr(TOKEN)))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            without = await _get_price(channel)
            wrong = await _get_price(channel, token="not-the-key")
            with_token = await _get_price(channel, token=TOKEN)
            stream_without = await _stream(channel)
            stream_with = await _stream(channel, token=TOKEN)
            health_without = await _health(channel)
    finally:
        await server.stop(0)

    assert without == grpc.StatusCode.UNAUTHENTICATED
    assert wrong == grpc.StatusCode.UNAUTHENTICATED
    assert with_token == grpc.StatusCode.OK
    assert stream_without == grpc.StatusCode.UNAUTHENTICATED
    assert stream_with == grpc.StatusCode.OK
    assert health_without == grpc.StatusCode.OK  # open by default, for load balancers


@pytest.mark.asyncio
async def test_health_can_be_put_behind_the_token_too() -> None:
    server = await _serve(ServerSecurity(api_token=SecretStr(TOKEN), open_health=False))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health_without = await _health(channel)
    finally:
        await server.stop(0)

    assert health_without == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.asyncio
async def test_with_tls_a_client_dialing_plaintext_is_refused_and_one_trusting_the_ca_served(
    certificates: tuple[Path, Path, Path],
) -> None:
    ca, chain, key = certificates
    server = await _serve(ServerSecurity(tls_cert_file=chain, tls_key_file=key))
    address = f"127.0.0.1:{server.port}"
    try:
        async with grpc.aio.insecure_channel(address) as plaintext:
            over_plaintext = await _get_price(plaintext)
        async with ChannelSecurity(tls_ca_file=ca).open_channel(address) as trusted:
            over_tls = await _get_price(trusted)
        # A CA that did not sign the server's certificate: the handshake fails.
        stranger = ca.parent / "stranger.pem"
        trustme.CA().cert_pem.write_to_path(str(stranger))
        async with ChannelSecurity(tls_ca_file=stranger).open_channel(address) as untrusted:
            over_untrusted = await _get_price(untrusted)
    finally:
        await server.stop(0)

    assert over_plaintext == grpc.StatusCode.UNAVAILABLE
    assert over_tls == grpc.StatusCode.OK
    assert over_untrusted == grpc.StatusCode.UNAVAILABLE


@pytest.mark.asyncio
async def test_the_server_name_can_be_set_when_the_address_is_not_in_the_certificate(
    tmp_path: Path,
) -> None:
    ca, chain, key = write_certificates(tmp_path, "price.internal")
    server = await _serve(ServerSecurity(tls_cert_file=chain, tls_key_file=key))
    address = f"127.0.0.1:{server.port}"
    try:
        async with ChannelSecurity(tls_ca_file=ca).open_channel(address) as by_address:
            mismatched = await _get_price(by_address)
        named = ChannelSecurity(tls_ca_file=ca, tls_server_name="price.internal")
        async with named.open_channel(address) as by_name:
            matched = await _get_price(by_name)
    finally:
        await server.stop(0)

    assert mismatched == grpc.StatusCode.UNAVAILABLE
    assert matched == grpc.StatusCode.OK


def test_a_certificate_without_its_key_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tls_cert_file and tls_key_file"):
        ServerSecurity(tls_cert_file=tmp_path / "server.pem")


@pytest.mark.asyncio
async def test_every_call_is_counted_by_method_and_status_code() -> None:
    metrics = CollectorRegistry()
    server = await _serve(ServerSecurity(api_token=SecretStr(TOKEN)), metrics)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            await _get_price(channel, token=TOKEN)
            await _get_price(channel, token=TOKEN)
            await _get_price(channel, symbol="NOPE", token=TOKEN)
            refused = await _get_price(channel)
            await _stream(channel, token=TOKEN)
            stream_refused = await _stream(channel)
    finally:
        await server.stop(0)

    def handled(method: str, code: str) -> float | None:
        return metrics.get_sample_value(
            "grpc_server_handled_total",
            {"grpc_type": "UNARY" if method == "GetPrice" else "SERVER_STREAMING",
             "grpc_service": SERVICE, "grpc_method": method, "grpc_code": code},
        )  # fmt: skip

    # Refused calls keep their status through the metrics interceptor.
    assert (refused, stream_refused) == (grpc.StatusCode.UNAUTHENTICATED,) * 2
    assert handled("GetPrice", "OK") == 2
    assert handled("GetPrice", "NOT_FOUND") == 1
    assert handled("GetPrice", "UNAUTHENTICATED") == 1
    assert handled("StreamPrices", "OK") == 1
    assert handled("StreamPrices", "UNAUTHENTICATED") == 1
    latency_count = metrics.get_sample_value(
        "grpc_server_handling_seconds_count",
        {"grpc_type": "UNARY", "grpc_service": SERVICE, "grpc_method": "GetPrice"},
    )
    assert latency_count == 4
    sent = metrics.get_sample_value(
        "grpc_server_msg_sent_total",
        {"grpc_type": "SERVER_STREAMING", "grpc_service": SERVICE, "grpc_method": "StreamPrices"},
    )
    assert sent == 2


@pytest.mark.asyncio
async def test_the_health_command_dials_a_tls_server_with_its_ca(
    certificates: tuple[Path, Path, Path],
) -> None:
    ca, chain, key = certificates
    server = await _serve(ServerSecurity(tls_cert_file=chain, tls_key_file=key))
    address = f"127.0.0.1:{server.port}"
    try:
        await server.health.set_all(serving=True)
        with_ca = await asyncio.to_thread(
            CliRunner().invoke, health, [address, "--tls-ca-file", str(ca), "--timeout-s", "5"]
        )
        plaintext = await asyncio.to_thread(
            CliRunner().invoke, health, [address, "--timeout-s", "2"]
        )
    finally:
        await server.stop(0)

    assert with_ca.exit_code == 0, with_ca.output
    assert "SERVING" in with_ca.output
    assert plaintext.exit_code == 1
    assert "UNAVAILABLE" in plaintext.output

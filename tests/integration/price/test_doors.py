"""The price service behind its doors: a token and TLS, on the real service fed by the replay."""

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from finance.market.v1 import price_service_pb2, price_service_pb2_grpc
from finplat.core.connections import InfluxSettings, KafkaSettings
from finplat.core.grpc_security import ChannelSecurity, bearer_metadata
from tests.integration.conftest import StartReplay
from tests.integration.price.harness import price_service
from tests.support import eventually_async, write_certificates

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TOKEN = SecretStr("price-door-key")


async def _get_price(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.StatusCode:
    stub = price_service_pb2_grpc.PriceServiceStub(channel)
    try:
        await stub.GetPrice(
            price_service_pb2.GetPriceRequest(symbol="BTCUSDT"), metadata=metadata, timeout=5
        )
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_client_without_the_token_or_without_tls_is_refused(
    start_replay: StartReplay,
    kafka_settings: KafkaSettings,
    influx_settings: InfluxSettings,
    tmp_path: Path,
) -> None:
    ca, chain, key = write_certificates(tmp_path, "127.0.0.1")
    replay = await start_replay()
    feed = {"symbols": ("BTCUSDT",), "stream_kinds": ("kline_1m",)}
    async with price_service(
        replay, kafka_settings, influx_settings, feed,
        api_token=TOKEN, tls_cert_file=chain, tls_key_file=key,
    ) as running:  # fmt: skip
        address = f"127.0.0.1:{running.service.grpc_port}"
        async with ChannelSecurity(tls_ca_file=ca).open_channel(address) as tls:
            token = bearer_metadata(TOKEN)

            async def price_served() -> bool:
                return await _get_price(tls, token) == grpc.StatusCode.OK

            await eventually_async(price_served, 30, interval_s=0.2)
            without_token = await _get_price(tls)
            health = await health_pb2_grpc.HealthStub(tls).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        async with grpc.aio.insecure_channel(address) as plaintext:
            over_plaintext = await _get_price(plaintext, token)

    assert without_token == grpc.StatusCode.UNAUTHENTICATED
    assert over_plaintext == grpc.StatusCode.UNAVAILABLE
    # Health stays open to load balancers without the token (open_health defaults to true).
    assert health.status in (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )

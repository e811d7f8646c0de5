"""A price service under test: fed by the in-process replay server, writing to the real stack
(a fresh Kafka topic, unless the caller shares one, and Redis key prefix per test; the InfluxDB
bucket comes from the caller)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc
from finplat.core.clock import SystemClock
from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.kafka.admin import ensure_topic
from finplat.price.adapters.binance.settings import FeedSettings, RestSettings
from finplat.price.service.app import Infrastructure, PriceService
from finplat.price.service.settings import PriceSettings
from finplat.replay.server import ReplayServer


def timestamp(ms: int) -> Timestamp:
    """A protobuf Timestamp at `ms` epoch milliseconds."""
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


@dataclass
class Running:
    """A price service under test and what it writes to."""

    service: PriceService
    stub: "price_service_pb2_grpc.PriceServiceAsyncStub"
    kafka: KafkaSettings

    async def health(self, name: str) -> int:
        """The grpc.health.v1 status the service reports for `name`."""
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.service.grpc_port}") as channel:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=name)
            )
        status: int = response.status
        return status

    async def candles(
        self, symbol: str, interval: str, start: int, end: int
    ) -> list[market_pb2.Candle]:
        """GetCandles over [start, end) ms, every candle of the range."""
        response = await self.stub.GetCandles(
            price_service_pb2.GetCandlesRequest(
                symbol=symbol,
                interval=interval,
                start_time=timestamp(start),
                end_time=timestamp(end),
                limit=5000,
            )
        )
        return list(response.candles)


def fresh_topic(kafka_settings: KafkaSettings) -> str:
    """A new Kafka topic of 3 partitions, created on the stack."""
    topic = f"test-price-service-{uuid.uuid4().hex}"
    ensure_topic(kafka_settings, topic, partitions=3)
    return topic


@asynccontextmanager
async def price_service(
    replay: ReplayServer,
    kafka_settings: KafkaSettings,
    influx: InfluxSettings,
    feed: dict[str, Any],
    redis_url: str | None = None,
    influx_url: str | None = None,
    topic: str | None = None,
    **settings: Any,
) -> AsyncIterator[Running]:
    """`topic`: one from `fresh_topic` that several services write; None makes one of its own."""
    kafka = kafka_settings.model_copy(update={"topic": topic or fresh_topic(kafka_settings)})
    redis = RedisSettings(key_prefix=f"test-{uuid.uuid4().hex}")
    infra = Infrastructure(
        kafka,
        redis.model_copy(update={"url": redis_url}) if redis_url else redis,
        influx.model_copy(update={"url": influx_url}) if influx_url else influx,
    )
    defaults: dict[str, Any] = {
        "grpc_port": 0,
        "metrics_port": 0,
        "feed": FeedSettings(
            ws_base_url=replay.ws_url,
            rest=RestSettings(base_url=replay.http_url),
            ping_interval_s=None,
            **feed,
        ),
    }
    price_settings = PriceSettings(**(defaults | settings))
    service = PriceService(price_settings, infra, SystemClock())
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.serving.wait(), 30)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        try:
            yield Running(service, price_service_pb2_grpc.PriceServiceStub(channel), kafka)
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

"""Composition root of the price service: settings in, adapters and servers wired, run, stop.

Feed -> pipeline -> {stream hub, Redis, InfluxDB ticks, InfluxDB candles, Kafka}; each sink has
its own buffer and writer task, so any one store can be away without stopping the others.
With several shards, Kafka -> stream hub too, for the symbols the other shards ingest.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, start_http_server

from finance.market.v1 import market_pb2
from finplat.core.clock import Clock
from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.core.grpc_server import GrpcServer, ServiceBinding, start_server
from finplat.kafka.producer import PriceUpdateProducer
from finplat.kafka.serde import PriceUpdateDeserializer, PriceUpdateSerializer, registry_client
from finplat.market.intervals import INTERVALS, parse_interval
from finplat.price.adapters.binance.feed import BinanceFeed
from finplat.price.adapters.binance.rest import BinanceRest
from finplat.price.adapters.errors import StoreUnavailableError
from finplat.price.adapters.influx_market import InfluxMarketStore
from finplat.price.adapters.kafka_publisher import KafkaPublisher
from finplat.price.adapters.kafka_updates import KafkaPriceReader, KafkaReplay
from finplat.price.adapters.redis_prices import RedisPriceStore
from finplat.price.domain.candles import TradeCandles
from finplat.price.service.api import (
    SERVICE_NAME,
    PriceServicer,
    Resumption,
    add_price_service,
)
from finplat.price.service.metrics import LatencyMetrics, PriceCollector, PriceSources
from finplat.price.service.pipeline import PricePipeline, stored_intervals
from finplat.price.service.settings import PriceSettings
from finplat.price.service.sink_buffer import BufferedSink, WriteBatch, drain_all
from finplat.price.service.stream_hub import StreamHub

logger = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 1.0
T = TypeVar("T")


@dataclass(frozen=True)
class Infrastructure:
    """Where the external systems are."""

    kafka: KafkaSettings
    redis: RedisSettings
    influx: InfluxSettings


def _sink_reason(sink: BufferedSink[Any]) -> str | None:
    """Why a sink's store is not serving, or None when it is."""
    return None if sink.stats.healthy else f"{sink.name}: {sink.stats.last_error}"


def _sink(
    name: str, write: WriteBatch[T], batch_size: int, settings: PriceSettings
) -> BufferedSink[T]:
    return BufferedSink(
        name,
        write,
        capacity=settings.sinks.buffer_capacity,
        batch_size=batch_size,
        retry=settings.sinks.retry(),
        linger_s=settings.sinks.linger_ms / 1000,
    )


class PriceService:
    """The running service: its stores, sinks, feed and gRPC server."""

    def __init__(self, settings: PriceSettings, infra: Infrastructure, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        # Set once the gRPC server listens; `grpc_port` is then the bound port.
        self.serving = asyncio.Event()
        self.grpc_port = 0
        sinks = settings.sinks
        self.redis = RedisPriceStore(infra.redis)
        self.influx = InfluxMarketStore(infra.influx)
        self._registry = registry_client(infra.kafka)
        producer = PriceUpdateProducer(
            infra.kafka, PriceUpdateSerializer(self._registry, infra.kafka.topic)
        )
        self.publisher = KafkaPublisher(producer)
        self.latest = _sink("redis", self.redis.write_latest, sinks.redis_batch_size, settings)
        self.ticks = _sink(
            "influxdb_ticks", self.influx.write_ticks, sinks.influx_batch_size, settings
        )
        self.candles = _sink(
            "influxdb_candles", self.influx.write_candles, sinks.influx_batch_size, settings
        )
        self.kafka = _sink("kafka", self.publisher.write, sinks.kafka_batch_size, settings)
        self.hub = StreamHub(settings.stream_queue_capacity, settings.stream_max_batch)
        decode = PriceUpdateDeserializer(self._registry)
        self.replay = KafkaReplay(infra.kafka, decode)
        feed = settings.feed
        # The other shards' symbols reach this hub through Kafka; the own ones stay in-process.
        self.reader = (
            KafkaPriceReader(
                infra.kafka, decode, set(feed.symbols) - set(feed.owned), settings.sinks.retry()
            )
            if feed.shard_count > 1
            else None
        )
        kinds = settings.feed.stream_kinds
        from_trades = "trade" in kinds and "kline_1m" not in kinds
        self.stored_intervals = stored_intervals(kinds, from_trades)
        self.metrics_registry = CollectorRegistry()
        latency = LatencyMetrics(self.metrics_registry)
        self.pipeline = PricePipeline(
            self.hub,
            self.latest,
            self.ticks,
            self.candles,
            self.kafka,
            TradeCandles(
                INTERVALS["1m"],
                clock,
                settings.trade_candle_clock_rate,
                settings.trade_candle_lateness_ms,
            )
            if from_trades
            else None,
            on_publish=lambda u: latency.observe(u.timestamp, u.receive_timestamp, clock.time_ms()),
        )

    @property
    def sinks(self) -> Mapping[str, BufferedSink[Any]]:
        """Every buffered sink by name."""
        named: tuple[BufferedSink[Any], ...] = (self.latest, self.ticks, self.candles, self.kafka)
        return {sink.name: sink for sink in named}

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then shut down in order: API, feed, sinks, stores."""
        feed_settings = self.settings.feed
        logger.info(
            "ingesting shard %d of %d",
            feed_settings.shard_index,
            feed_settings.shard_count,
            extra={"symbols": list(feed_settings.owned)},
        )
        # Every symbol, not only this shard's: the stores behind GetPrice and GetCandles are
        # shared by all shards, and the hub has the other shards' updates from Kafka.
        servicer = PriceServicer(
            self.redis,
            self.influx,
            self.hub,
            self._clock,
            feed_settings.symbols,
            self.stored_intervals,
            Resumption(
                self.replay,
                frozenset(feed_settings.owned),
                self.settings.stream_resume_timeout_s,
                self.settings.stream_queue_capacity,
            ),
        )
        server = await start_server(
            self.settings.grpc_address,
            [ServiceBinding(SERVICE_NAME, lambda server: add_price_service(servicer, server))],
            security=self.settings,
            metrics=self.metrics_registry,
        )
        self.grpc_port = server.port
        self.serving.set()
        try:
            resume = await self._resume_points()
            async with (
                BinanceRest(self.settings.feed.rest) as rest,
                BinanceFeed(
                    self.settings.feed, rest=rest, clock=self._clock, resume=resume
                ) as feed,
            ):
                self._serve_metrics(feed)
                await self._run_tasks(feed, server, stop)
        finally:
            await server.stop(self.settings.shutdown_grace_s)
            await self._drain()
            await self.redis.close()
            await self.influx.close()
            self.replay.close()
            self._registry.close()

    async def _resume_points(self) -> dict[tuple[str, str], int]:
        """Where each kline stream's stored candles end: the first live kline after a restart
        then reveals, and backfills, the candles missed while the service was down."""
        codes = [k.removeprefix("kline_") for k in self.settings.feed.stream_kinds if "kline_" in k]
        points: dict[tuple[str, str], int] = {}
        # This shard's symbols: another shard resumes, and backfills, its own.
        for symbol in self.settings.feed.owned:
            for code in codes:
                spec = parse_interval(code)
                try:
                    last = await self.influx.last_open_time(symbol, spec)
                except StoreUnavailableError as exc:
                    logger.warning("candle store unavailable, no catch-up after restart: %s", exc)
                    return {}
                if last is not None:
                    points[(symbol, code)] = spec.next_start(last)
        if points:
            logger.info(
                "resuming kline streams after the stored candles", extra={"streams": len(points)}
            )
        return points

    def _serve_metrics(self, feed: BinanceFeed) -> None:
        self.metrics_registry.register(
            PriceCollector(
                PriceSources(
                    feed,
                    self.sinks,
                    self.hub,
                    self.publisher.producer,
                    refusals={
                        self.ticks.name: self.influx.refused_ticks,
                        self.candles.name: self.influx.refused_candles,
                        self.kafka.name: self.publisher.refused,
                    },
                    candle_rejections=self.pipeline.rejected_candles,
                )
            )
        )
        if self.settings.metrics_port:
            start_http_server(
                self.settings.metrics_port, self.settings.grpc_host, registry=self.metrics_registry
            )

    async def _run_tasks(self, feed: BinanceFeed, server: GrpcServer, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(sink.run(), name=f"sink-{sink.name}")
            for sink in self.sinks.values()
        ]
        tasks.append(
            asyncio.create_task(self.publisher.serve_deliveries(), name="kafka-deliveries")
        )
        tasks.append(asyncio.create_task(self._consume(feed), name="feed"))
        if self.reader is not None:
            tasks.append(asyncio.create_task(self.reader.run(self._publish), name="kafka-reader"))
        tasks.append(asyncio.create_task(self._watch(feed, server), name="health"))
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task is stopper or task.cancelled() else task.exception()
                if error is not None:
                    raise error
        finally:
            for task in (*tasks, stopper):
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)

    async def _consume(self, feed: BinanceFeed) -> None:
        async for item in feed:
            self.pipeline.handle(item)

    def _publish(self, updates: list[market_pb2.PriceUpdate]) -> None:
        """Another shard's updates, read from Kafka: for this instance's subscribers only (the
        owner stores and publishes them)."""
        for update in updates:
            self.hub.publish(update)

    async def _watch(self, feed: BinanceFeed, server: GrpcServer) -> None:
        """Keep health true to the feed and the stores, and close trade-built candles."""
        last_frames, silent_s = -1, 0.0
        stall_s = self.settings.feed.stall_timeout_s or 60.0
        while True:
            self.pipeline.tick()
            silent_s = 0.0 if feed.stats.frames != last_frames else silent_s + HEALTH_INTERVAL_S
            last_frames = feed.stats.frames
            feed_reason = (
                f"no frame from the feed for {silent_s:.0f} s" if silent_s >= stall_s else None
            )
            await server.health.report(
                {
                    "finplat.price.feed": feed_reason,
                    **{
                        f"finplat.price.sink.{name}": _sink_reason(sink)
                        for name, sink in self.sinks.items()
                    },
                    "finplat.price.kafka": "no Kafka broker reachable"
                    if self.publisher.producer.brokers_down
                    else None,
                    **(
                        {"finplat.price.kafka_reader": self.reader.reason}
                        if self.reader is not None
                        else {}
                    ),
                }
            )
            # The API itself answers from Redis: its own name follows the latest-price store.
            await server.health.set_serving(self.latest.stats.healthy, SERVICE_NAME)
            await asyncio.sleep(HEALTH_INTERVAL_S)

    async def _drain(self) -> None:
        timeout = self.settings.sinks.drain_timeout_s
        deadline = time.monotonic() + timeout
        await drain_all(self.sinks.values(), timeout)
        # librdkafka delivered in the background meanwhile; the flush waits for the rest.
        left = await self.publisher.flush(max(0.0, deadline - time.monotonic()))
        logger.info("price service stopped", extra={"kafka_unacknowledged": left})

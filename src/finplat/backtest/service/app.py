"""Composition root of the backtest service: settings, adapters, the consumer and the server.

The consumer thread (through its owning task), the periodic statistics log and the consumer's
health watch run in one TaskGroup next to the gRPC server; SIGTERM or SIGINT stops the
consumer (final commit, close), then the server (health NOT_SERVING, in-flight calls finish).
"""

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka.schema_registry import SchemaRegistryClient
from google.longrunning import operations_pb2_grpc  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry

from finance.backtest.v1 import backtest_service_pb2_grpc
from finance.market.v1 import price_service_pb2_grpc
from finplat.backtest.adapters import database
from finplat.backtest.adapters.consumer_state import ConsumerStateStore
from finplat.backtest.adapters.dead_letter import DeadLetterProducer
from finplat.backtest.adapters.history import PriceServiceBars
from finplat.backtest.adapters.operation_store import OperationStore
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.adapters.strategy_loader import load_user_strategies
from finplat.backtest.adapters.sweep_executor import LocalExecutor, SweepExecutor
from finplat.backtest.domain.stats import StatsSnapshot, StreamStats
from finplat.backtest.service.api import BacktestServicer
from finplat.backtest.service.consumer import PartitionLag, StatsConsumer
from finplat.backtest.service.metrics import (
    BacktestCollector,
    BacktestSources,
    CountingResults,
    metrics_server,
)
from finplat.backtest.service.operations import Operations
from finplat.backtest.service.operations_api import SERVICE_NAME as OPERATIONS_SERVICE_NAME
from finplat.backtest.service.operations_api import OperationsServicer
from finplat.backtest.service.processor import BatchProcessor
from finplat.backtest.service.runs import Limits
from finplat.backtest.service.settings import BacktestSettings
from finplat.core.connections import KafkaSettings
from finplat.core.grpc_security import bearer_metadata
from finplat.core.grpc_server import GrpcServer, ServiceBinding, start_server
from finplat.kafka.admin import ensure_topic
from finplat.kafka.consumer import PriceUpdateConsumer
from finplat.kafka.errors import KafkaAdapterError
from finplat.kafka.price_record import PriceRecordDeserializer
from finplat.kafka.serde import registry_client

logger = logging.getLogger(__name__)

SERVICE_NAME = "finance.backtest.v1.BacktestService"
# Health name of the consumer alone: the API serves without it, so it is not the overall one.
CONSUMER_HEALTH = "finplat.backtest.PriceUpdateConsumer"
_HEALTH_POLL_S = 1.0
# Whose every operation lease in a SQLite file is: the one instance that uses the file.
_FILE_OWNER = "results-file"


@dataclass
class ConsumerParts:
    """The consumer and what it owns; closed once its thread has finished."""

    consumer: StatsConsumer
    state: ConsumerStateStore
    dead_letters: DeadLetterProducer
    registry: SchemaRegistryClient

    def close(self, timeout_s: float) -> None:
        self.dead_letters.close(timeout_s)
        self.state.close()
        self.registry.close()


class IdleStats:
    """Statistics when the consumer is disabled: empty, with an uptime."""

    def __init__(self) -> None:
        # Nothing is ever observed: a window of one key is all it needs.
        self._stats = StreamStats(time.monotonic, dedup_capacity=1)

    def snapshot(self) -> tuple[StatsSnapshot, tuple[PartitionLag, ...]]:
        return self._stats.snapshot(), ()


def build_consumer(
    settings: BacktestSettings, kafka: KafkaSettings, lock: threading.Lock
) -> ConsumerParts:
    """Wire the consumer to Kafka, the registry and its state: a SQLite file, or the
    PostgreSQL database that every instance of the group shares."""
    location = database.location(settings.consumer_state_path, settings.database_url)
    state = ConsumerStateStore(location, settings.consumer_group_id, kafka.topic)
    dead_letters = DeadLetterProducer(kafka, kafka.dead_letter_topic)
    registry = registry_client(kafka)
    processor = BatchProcessor(
        lambda: StreamStats(time.monotonic, settings.dedup_capacity),
        PriceRecordDeserializer(registry),
        dead_letters,
        state,
        lock,
        settings.dead_letter_timeout_s,
    )
    config: dict[str, object] = {
        # A member joining or leaving moves only the partitions that must move; the others
        # keep being counted through the rebalance.
        "partition.assignment.strategy": "cooperative-sticky",
    }
    if settings.consumer_instance_id:
        config["group.instance.id"] = settings.consumer_instance_id
    source = PriceUpdateConsumer(kafka, settings.consumer_group_id, config)
    consumer = StatsConsumer(
        source,
        processor,
        lock,
        max_messages=settings.poll_max_messages,
        poll_timeout_s=settings.poll_timeout_s,
    )
    return ConsumerParts(consumer, state, dead_letters, registry)


def log_snapshot(snapshot: StatsSnapshot, lags: tuple[PartitionLag, ...]) -> None:
    """The periodic statistics line: everything in `extra`, one JSON object."""
    logger.info(
        "price-update statistics",
        extra={
            "total_messages": snapshot.total_messages,
            "decode_errors": snapshot.decode_errors,
            "dead_lettered": snapshot.dead_lettered,
            "duplicates": snapshot.duplicates,
            "uptime_s": round(snapshot.uptime_s, 1),
            "symbols": {
                s.symbol: {
                    "count": s.count,
                    "last_price": s.last_price,
                    "messages_per_second": round(s.messages_per_second, 3),
                }
                for s in snapshot.symbols
            },
            "lag": {f"{lag.topic}/{lag.partition}": lag.lag for lag in lags},
        },
    )


async def _log_periodically(
    view: Callable[[], tuple[StatsSnapshot, tuple[PartitionLag, ...]]], interval_s: float
) -> None:
    while True:
        await asyncio.sleep(interval_s)
        log_snapshot(*view())


async def _watch_health(consumer: StatsConsumer, server: GrpcServer) -> None:
    """The consumer as a dependency: the overall status (what the gateway's /health reads)
    follows it; the API's own name stays serving, backtests need no Kafka."""
    while True:
        await server.health.report({CONSUMER_HEALTH: consumer.unhealthy_reason()})
        await asyncio.sleep(_HEALTH_POLL_S)


async def _ensure_dead_letter_topic(kafka: KafkaSettings) -> None:
    try:
        await asyncio.to_thread(
            ensure_topic, kafka, kafka.dead_letter_topic, kafka.topic_partitions
        )
    except KafkaAdapterError as exc:
        # Not fatal: Kafka may be down now; dead letters wait and retry until it is back.
        logger.warning("cannot ensure the dead-letter topic: %s", exc)


async def _run_until_signal(
    settings: BacktestSettings,
    parts: ConsumerParts | None,
    view: Callable[[], tuple[StatsSnapshot, tuple[PartitionLag, ...]]],
    server: GrpcServer,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            helpers = [group.create_task(_log_periodically(view, settings.stats_log_interval_s))]
            if parts is not None:
                group.create_task(parts.consumer.run())
                helpers.append(group.create_task(_watch_health(parts.consumer, server)))
            await stop.wait()
            logger.info("shutting down")
            if parts is not None:
                parts.consumer.stop()
            for helper in helpers:
                helper.cancel()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log_snapshot(*view())


def sweep_executor(settings: BacktestSettings) -> SweepExecutor:
    """Where the sweep and walk-forward operations compute (a Ray cluster connects on use)."""
    if settings.sweep_executor == "ray":
        # Imported only then: ray takes a second to import, and the local executor needs none.
        from finplat.backtest.adapters.ray_executor import RayExecutor  # noqa: PLC0415

        return RayExecutor(settings.ray_address)
    return LocalExecutor(settings.sweep_workers)


def operations_owner(settings: BacktestSettings) -> str | None:
    """Whose the operation leases this instance takes are: a stable id (its
    `consumer_instance_id`; with a SQLite file, which one instance alone uses, always the same)
    takes a restarted instance's operations back at once, as static membership gives a consumer
    its partitions back. Else one of this process's own (None): a killed instance's operations
    wait for their leases to expire, then another instance takes them over."""
    if settings.consumer_instance_id:
        return settings.consumer_instance_id
    return _FILE_OWNER if settings.database_url is None else None


async def serve(settings: BacktestSettings, kafka: KafkaSettings) -> None:
    """Run the service until SIGTERM or SIGINT."""
    # First: a strategy file that does not load stops the start, before anything is opened.
    for entry in load_user_strategies(settings.strategy_dirs):
        logger.info("strategy %s loaded from %s", entry.spec.name, entry.source)
    # Several instances may share one PostgreSQL database; one alone keeps a SQLite file.
    stored_in = database.location(settings.results_path, settings.database_url)
    logger.info("results stored in %s", database.describe(stored_in))
    results = await ResultStore.open(stored_in)
    try:
        operation_store = await OperationStore.open(stored_in)
    except BaseException:
        await results.close()
        raise
    lock = threading.Lock()
    parts = None
    try:
        if settings.consumer_enabled:
            await _ensure_dead_letter_topic(kafka)
            parts = build_consumer(settings, kafka, lock)
        view = parts.consumer if parts else IdleStats()
        stored = CountingResults(results)
        registry = CollectorRegistry()
        registry.register(
            BacktestCollector(BacktestSources(view, stored, parts.consumer if parts else None))
        )
        limits = Limits(settings.max_bars, settings.max_equity_points,
                        settings.max_sweep_combinations, settings.sweep_workers)  # fmt: skip
        async with (
            metrics_server(registry, settings.grpc_host, settings.metrics_port),
            settings.open_channel(settings.price_service_address) as channel,
        ):
            token = settings.price_service_api_token
            bars = PriceServiceBars(
                price_service_pb2_grpc.PriceServiceStub(channel),
                settings.candles_per_request,
                settings.price_service_timeout_s,
                metadata=bearer_metadata(token),
            )
            operations = Operations(
                operation_store,
                stored,
                bars,
                limits,
                executor=sweep_executor(settings),
                owner=operations_owner(settings),
                lease_s=settings.operation_lease_s,
            )
            servicer = BacktestServicer(
                view, bars, stored, limits, operations, settings.max_concurrent_runs
            )
            bindings = [
                ServiceBinding(
                    SERVICE_NAME,
                    lambda s: backtest_service_pb2_grpc.add_BacktestServiceServicer_to_server(
                        servicer, s
                    ),
                ),
                ServiceBinding(
                    OPERATIONS_SERVICE_NAME,
                    lambda s: operations_pb2_grpc.add_OperationsServicer_to_server(
                        OperationsServicer(operations), s
                    ),
                ),
            ]
            # Before the server answers: a cancel must find the operation it names running.
            resumed = await operations.resume()
            if resumed:
                logger.info("resumed %d unfinished operation(s)", resumed)
            try:
                server = await start_server(
                    settings.grpc_address, bindings, security=settings, metrics=registry
                )
            except BaseException:
                await operations.close()
                raise
            try:
                # The store is open: backtests can be served whatever the consumer's state.
                await server.health.set_all(True)
                await _run_until_signal(settings, parts, view.snapshot, server)
            finally:
                # Operations first: they stop, stay resumable, and their watchers' streams end,
                # so the server's grace period is not spent waiting for them.
                await operations.close()
                await server.stop(settings.shutdown_grace_s)
    finally:
        if parts is not None:
            parts.close(kafka.flush_timeout_s)
        await operation_store.close()
        await results.close()

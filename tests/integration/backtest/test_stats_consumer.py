"""The statistics consumer against the real Kafka and registry: exact counts through GetStats,
dead letters, restarts and duplicates. Each test has its own topic, dead-letter topic, group
and state file."""

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from confluent_kafka import Producer

from finance.backtest.v1 import backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import market_pb2
from finplat.backtest.adapters.dead_letter import (
    ERROR_HEADER,
    OFFSET_HEADER,
    PARTITION_HEADER,
    TOPIC_HEADER,
)
from finplat.backtest.adapters.history import LocalKlineBars
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.service.app import ConsumerParts, build_consumer
from finplat.backtest.service.runs import Limits
from finplat.backtest.service.settings import BacktestSettings
from finplat.core.connections import KafkaSettings
from finplat.kafka.admin import ensure_topic
from finplat.kafka.consumer import PriceUpdateConsumer, Record
from finplat.kafka.producer import PriceUpdateProducer
from finplat.kafka.serde import PriceUpdateSerializer, registry_client
from tests.backtest_server import backtest_server
from tests.support import eventually_async

pytestmark = pytest.mark.integration

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
WAIT_S = 60.0


@pytest.fixture
def topic_settings(kafka_settings: KafkaSettings) -> KafkaSettings:
    topic = f"test-backtest-stats-{uuid.uuid4().hex}"
    settings = kafka_settings.model_copy(
        update={"topic": topic, "dead_letter_topic": f"{topic}-dlq"}
    )
    ensure_topic(settings, settings.topic, partitions=3)
    ensure_topic(settings, settings.dead_letter_topic, partitions=1)
    return settings


@pytest.fixture
def service_settings(tmp_path: Path) -> BacktestSettings:
    return BacktestSettings(
        consumer_state_path=tmp_path / "consumer.sqlite3",
        results_path=tmp_path / "results.sqlite3",
        consumer_group_id=f"test-backtest-{uuid.uuid4().hex}",
        poll_timeout_s=0.1,
    )


def _update(index: int, event_id: str | None = None) -> market_pb2.PriceUpdate:
    return market_pb2.PriceUpdate(
        symbol=SYMBOLS[index % 3],
        price=f"{100 + index}.25",
        timestamp=1_700_000_000_000 + index,
        volume="0.001",
        service="test",
        kind=market_pb2.EVENT_KIND_TRADE,
        event_id=event_id or str(index),
        exchange="binance",
    )


def _produce(settings: KafkaSettings, updates: list[market_pb2.PriceUpdate]) -> None:
    with registry_client(settings) as registry:
        producer = PriceUpdateProducer(settings, PriceUpdateSerializer(registry, settings.topic))
        for item in updates:
            producer.send(item)
        assert producer.flush(30) == 0
    assert (producer.delivered, producer.failed) == (len(updates), 0)


@dataclass
class Running:
    parts: ConsumerParts
    stub: "backtest_service_pb2_grpc.BacktestServiceAsyncStub"

    async def stats(self) -> backtest_service_pb2.GetStatsResponse:
        return await self.stub.GetStats(backtest_service_pb2.GetStatsRequest())

    async def wait_for(self, counted: int, duplicates: int = 0, errors: int = 0) -> None:
        def done() -> bool:
            snapshot, _ = self.parts.consumer.snapshot()
            seen = (snapshot.total_messages, snapshot.duplicates, snapshot.dead_lettered)
            return seen >= (counted, duplicates, errors) and seen[0] >= counted

        await eventually_async(done, WAIT_S)


@pytest_asyncio.fixture
async def start(
    topic_settings: KafkaSettings, service_settings: BacktestSettings, tmp_path: Path
) -> AsyncIterator["StartConsumer"]:
    starter = StartConsumer(topic_settings, service_settings, tmp_path)
    yield starter
    await starter.stop()


class StartConsumer:
    """Starts the real consumer and the real servicer on an in-process server; stops them."""

    def __init__(self, kafka: KafkaSettings, settings: BacktestSettings, tmp_path: Path) -> None:
        self.kafka, self.settings, self.tmp_path = kafka, settings, tmp_path
        self._stop: list[object] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self) -> Running:
        parts = build_consumer(self.settings, self.kafka, threading.Lock())
        store = await ResultStore.open(self.settings.results_path)
        served = backtest_server(
            parts.consumer, LocalKlineBars(self.tmp_path), store, self.settings.results_path,
            Limits(),
        )  # fmt: skip
        server = await served.__aenter__()
        channel = grpc.aio.insecure_channel(server.address)
        self._task = asyncio.create_task(parts.consumer.run())
        self._current = (parts, store, served, channel)
        return Running(parts, backtest_service_pb2_grpc.BacktestServiceStub(channel))

    async def stop(self) -> None:
        if self._task is None:
            return
        parts, store, served, channel = self._current
        parts.consumer.stop()
        await self._task
        self._task = None
        parts.close(5.0)
        await channel.close()
        await served.__aexit__(None, None, None)
        await store.close()


def _dead_letters(settings: KafkaSettings, want: int) -> list[Record]:
    dlq = settings.model_copy(update={"topic": settings.dead_letter_topic})
    reader = PriceUpdateConsumer(dlq, f"test-dlq-{uuid.uuid4().hex}")
    try:
        reader.assign(dict.fromkeys(reader.topic_end_offsets(), 0))
        records: list[Record] = []
        deadline = time.monotonic() + WAIT_S
        while len(records) < want and time.monotonic() < deadline:
            records.extend(reader.poll(100, 0.5))
        return records
    finally:
        reader.close()


@pytest.mark.asyncio
async def test_get_stats_counts_exactly(
    start: StartConsumer, topic_settings: KafkaSettings
) -> None:
    _produce(topic_settings, [_update(i) for i in range(300)])

    running = await start()
    await running.wait_for(300)
    await eventually_async(lambda: len(running.parts.consumer.snapshot()[1]) == 3, WAIT_S)
    stats = await running.stats()

    assert (stats.total_messages, stats.duplicates, stats.decode_errors) == (300, 0, 0)
    by_symbol = {s.symbol: s for s in stats.symbols}
    btc = by_symbol["BTCUSDT"]  # indices 0, 3, ..., 297
    assert (btc.count, btc.min_price, btc.max_price, btc.last_price) == (
        100, "100.25", "397.25", "397.25",
    )  # fmt: skip
    assert btc.volume == "0.100"
    assert btc.first_event_time.ToMilliseconds() == 1_700_000_000_000
    assert btc.last_event_time.ToMilliseconds() == 1_700_000_000_297
    assert [s.count for s in stats.symbols] == [100, 100, 100]
    assert sum(lag.end_offset for lag in stats.lag) == 300
    assert all(lag.lag == 0 for lag in stats.lag)


@pytest.mark.asyncio
async def test_poison_message_is_dead_lettered_and_consumption_goes_on(
    start: StartConsumer, topic_settings: KafkaSettings
) -> None:
    _produce(topic_settings, [_update(0)])
    raw = Producer({"bootstrap.servers": topic_settings.bootstrap_servers})
    raw.produce(topic_settings.topic, key=b"BTCUSDT", value=b"definitely not avro", partition=0)
    assert raw.flush(30) == 0
    _produce(topic_settings, [_update(1), _update(2)])

    running = await start()
    await running.wait_for(3, errors=1)
    stats = await running.stats()
    letters = _dead_letters(topic_settings, 1)

    assert (stats.total_messages, stats.decode_errors, stats.dead_lettered) == (3, 1, 1)
    (letter,) = letters
    headers = dict(letter.headers)
    assert letter.value == b"definitely not avro"
    assert letter.key == b"BTCUSDT"
    assert b"magic byte" in headers[ERROR_HEADER]
    assert headers[TOPIC_HEADER] == topic_settings.topic.encode()
    assert headers[PARTITION_HEADER] == b"0"
    assert int(headers[OFFSET_HEADER]) >= 0


@pytest.mark.asyncio
async def test_restart_neither_loses_nor_double_counts(
    start: StartConsumer, topic_settings: KafkaSettings
) -> None:
    _produce(topic_settings, [_update(i) for i in range(120)])
    first = await start()
    await first.wait_for(120)
    await start.stop()

    # More updates while it is down, ten of them re-sends of updates already counted.
    _produce(
        topic_settings, [_update(i) for i in range(120, 180)] + [_update(i) for i in range(10)]
    )
    second = await start()
    await second.wait_for(180, duplicates=10)
    await asyncio.sleep(1.0)  # anything counted twice would show up by now
    stats = await second.stats()

    assert (stats.total_messages, stats.duplicates) == (180, 10)
    assert [s.count for s in stats.symbols] == [60, 60, 60]


@pytest.mark.asyncio
async def test_the_same_update_twice_counts_once(
    start: StartConsumer, topic_settings: KafkaSettings
) -> None:
    _produce(topic_settings, [_update(7), _update(7), _update(8)])

    running = await start()
    await running.wait_for(2, duplicates=1)
    stats = await running.stats()

    assert (stats.total_messages, stats.duplicates) == (2, 1)
    assert {s.symbol: s.count for s in stats.symbols} == {"ETHUSDT": 1, "SOLUSDT": 1}


@pytest.mark.asyncio
async def test_stop_mid_stream_resumes_from_stored_offsets_even_in_a_new_group(
    start: StartConsumer, topic_settings: KafkaSettings
) -> None:
    _produce(topic_settings, [_update(i) for i in range(3000)])
    start.settings = start.settings.model_copy(update={"poll_max_messages": 50})
    first = await start()
    await first.wait_for(500)
    await start.stop()
    counted_before_stop = first.parts.consumer.snapshot()[0].total_messages

    # A new group has no commits: only the offsets stored with the statistics say where to go.
    group = f"test-backtest-{uuid.uuid4().hex}"
    start.settings = start.settings.model_copy(update={"consumer_group_id": group})
    second = await start()
    await second.wait_for(3000)
    await asyncio.sleep(1.0)
    stats = await second.stats()

    assert 500 <= counted_before_stop < 3000
    assert (stats.total_messages, stats.duplicates) == (3000, 0)

"""Kafka's side away while the replay streams at full speed: the Schema Registry cut at start and
for 30 s mid-stream (a TCP proxy in front of the real registry), and the broker killed with
SIGKILL and started again (the real process). Afterwards the topic is read back: every kline
the replay sent is there once, in order, and the backtest's consumer counted each once.
"""

import asyncio
import os
import signal
import subprocess
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import grpc
import pytest

from finance.market.v1 import price_service_pb2
from finplat.backtest.service.settings import BacktestSettings
from finplat.core.connections import InfluxSettings, KafkaSettings
from finplat.stack.process import StackDirs, running_pid
from finplat.stack.settings import StackSettings
from tests.integration.backtest.test_stats_consumer import StartConsumer
from tests.integration.conftest import StartReplay
from tests.integration.price.harness import Running, price_service
from tests.integration.price.test_price_service import (
    MINUTE,
    NOT_SERVING,
    SERVING,
    _kafka_updates,
    _kline_rows,
    _ms,
    _port,
)
from tests.paths import FINPLAT, REPO_ROOT
from tests.proxy import TcpProxy
from tests.support import eventually_async

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BTC_DAY = "klines/spot/BTCUSDT/1m/BTCUSDT-1m-2024-10-01.csv.gz"
REGISTRY_OUTAGE_S = 30.0


def _published_in_order(kafka: KafkaSettings, count: int) -> list[int]:
    """Timestamps of the BTCUSDT updates on the topic (at least `count` read), in the order
    they were published."""
    per_symbol: dict[str, list[int]] = defaultdict(list)
    for update in _kafka_updates(kafka, count):
        per_symbol[update.symbol].append(update.timestamp)
    return per_symbol["BTCUSDT"]


async def _price_served(running: Running) -> bool:
    try:
        await running.stub.GetPrice(price_service_pb2.GetPriceRequest(symbol="BTCUSDT"))
    except grpc.aio.AioRpcError:
        return False
    return True


async def test_registry_away_at_start_and_for_30_s_mid_stream_loses_nothing(
    start_replay: StartReplay,
    kafka_settings: KafkaSettings,
    influx_settings: InfluxSettings,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    start, end = _ms("2024-10-01T18:00:00"), _ms("2024-10-02T00:00:00")
    btc = _kline_rows(data_dir / BTC_DAY, start, end)
    proxy = TcpProxy("127.0.0.1", _port(kafka_settings.schema_registry_url))
    await proxy.enable()
    await proxy.disable()  # its port now refuses: the registry is away from the start
    registry_path = kafka_settings.schema_registry_url.split("/", 3)[3]
    through_proxy = kafka_settings.model_copy(
        update={"schema_registry_url": f"http://127.0.0.1:{proxy.port}/{registry_path}"}
    )
    replay = await start_replay(kline_last_day=date(2024, 10, 1), start_ms=start, speed=600.0)
    feed = {"symbols": ("BTCUSDT",), "stream_kinds": ("kline_1m",)}

    async with price_service(replay, through_proxy, influx_settings, feed) as running:
        kafka_sink = running.service.kafka
        # Away at start: prices are served from Redis, Kafka's updates wait in the buffer.
        await eventually_async(lambda: _price_served(running), 30, 0.1)
        await eventually_async(lambda: not kafka_sink.stats.healthy and len(kafka_sink) > 5, 30)
        await eventually_async(
            lambda: _health_is(running, "finplat.price.sink.kafka", NOT_SERVING), 10, 0.2
        )
        written_at_start = kafka_sink.stats.written
        await proxy.enable()
        await eventually_async(lambda: kafka_sink.stats.written >= 60, 30)

        # Away mid-stream, for 30 s: the producer has its schema id; a backtest consumer that
        # starts now has none and must wait for the registry without losing its place.
        await proxy.disable()
        consumers = StartConsumer(
            running.kafka,
            BacktestSettings(
                consumer_state_path=tmp_path / "consumer.sqlite3",
                results_path=tmp_path / "results.sqlite3",
                consumer_group_id=f"test-registry-outage-{os.getpid()}",
                poll_timeout_s=0.1,
            ),
            tmp_path,
        )
        consumer = (await consumers()).parts.consumer
        written_before = kafka_sink.stats.written
        await asyncio.sleep(REGISTRY_OUTAGE_S)
        during = (kafka_sink.stats.written - written_before, consumer.snapshot()[0].total_messages)
        paused_reason = consumer.unhealthy_reason()
        await proxy.enable()
        recovered_at = time.monotonic()
        await eventually_async(lambda: consumer.snapshot()[0].total_messages >= len(btc), 60)
        recovery_s = time.monotonic() - recovered_at
        counted = consumer.snapshot()[0]
        await consumers.stop()

    await proxy.disable()
    direct = running.kafka.model_copy(
        update={"schema_registry_url": kafka_settings.schema_registry_url}
    )
    assert written_at_start == 0
    assert during[0] > 0  # the producer went on publishing with its cached schema
    assert during[1] == 0  # the consumer could decode nothing without the registry
    assert paused_reason is not None
    assert "registry" in paused_reason.lower()
    assert recovery_s < 60
    assert _published_in_order(direct, len(btc)) == [row.open_time + MINUTE for row in btc]
    assert (counted.total_messages, counted.duplicates, counted.dead_lettered) == (len(btc), 0, 0)


def _stack_kafka_pid() -> int:
    pid = running_pid(StackDirs(StackSettings().data_dir), "kafka")
    if pid is None:
        pytest.fail(
            "this test kills the stack's broker: it needs the stack `finplat stack up` runs"
        )
    return pid


async def test_broker_killed_with_sigkill_and_restarted_loses_nothing_acknowledged(
    start_replay: StartReplay,
    kafka_settings: KafkaSettings,
    influx_settings: InfluxSettings,
    data_dir: Path,
) -> None:
    start, end = _ms("2024-10-01T21:00:00"), _ms("2024-10-02T00:00:00")
    btc = _kline_rows(data_dir / BTC_DAY, start, end)
    replay = await start_replay(kline_last_day=date(2024, 10, 1), start_ms=start, speed=600.0)
    feed = {"symbols": ("BTCUSDT",), "stream_kinds": ("kline_1m",)}

    async with price_service(replay, kafka_settings, influx_settings, feed) as running:
        producer = running.service.publisher.producer
        await eventually_async(lambda: producer.delivered >= 20, 30)
        os.kill(_stack_kafka_pid(), signal.SIGKILL)
        killed_at = time.monotonic()
        await eventually_async(
            lambda: _health_is(running, "finplat.price.kafka", NOT_SERVING), 30, 0.2
        )
        delivered_at_kill = producer.delivered
        restarted = await asyncio.to_thread(
            subprocess.run,
            [str(FINPLAT), "stack", "up"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        await eventually_async(
            lambda: producer.delivered >= len(btc) and not producer.pending(), 120
        )
        recovery_s = time.monotonic() - killed_at
        await eventually_async(lambda: _health_is(running, "finplat.price.kafka", SERVING), 10, 0.2)

    assert restarted.returncode == 0, restarted.stderr
    assert delivered_at_kill < len(btc)  # the broker died mid-stream
    assert producer.failed == 0  # nothing given up: all delivered within delivery.timeout.ms
    assert recovery_s < 120
    # Idempotence: the retries after the restart neither duplicated nor reordered anything.
    assert _published_in_order(running.kafka, len(btc)) == [row.open_time + MINUTE for row in btc]


async def _health_is(running: Running, name: str, status: int) -> bool:
    return await running.health(name) == status

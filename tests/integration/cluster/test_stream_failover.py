"""A StreamPrices client moved from a killed instance to another misses no update.

Two sharded price services fed by one replay, as in test_shards.py: A (shard 0) is a real
`finplat price serve` process, so that it can die by SIGKILL, with no drain and no goodbye; B
(shard 1) runs in this process. The client streams from A two of B's symbols (A serves them
from Kafka) and one of A's own (in-process). A is killed mid-stream; the client waits a moment,
as a client noticing and reconnecting would, and resumes on B with the last update it got of
each symbol. For B's symbols, what it got from A and from B together is every kline the replay
sent, each once, in order: B replayed the gap from Kafka. A's own symbol stops with A: the
client has, once each, every update of it that reached Kafka.
"""

import asyncio
import json
import logging
import os
import signal
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc
from finplat.core.connections import InfluxSettings, KafkaSettings
from finplat.replay.server import ReplayServer
from finplat.stack.process import free_ports
from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.test_shards import (
    FIRST_OPEN,
    OWNER,
    SYMBOLS,
    _messages_on,
    _service_name,
    _write_klines,
)
from tests.integration.conftest import StartReplay
from tests.integration.price.harness import fresh_topic, price_service
from tests.integration.price.test_price_service import MINUTE, _kafka_updates
from tests.paths import FINPLAT, REPO_ROOT
from tests.support import eventually_async

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.asyncio]

MINUTES = 90  # 9 s of klines at 600x
# Both shards and the client subscribe within 60 market minutes: 6 s at 600x.
PRE_ROLL_MS = 60 * MINUTE
FROM_KAFKA = ("BTCUSDT", "SOLUSDT")  # B's, streamed by A from Kafka
IN_PROCESS = "ETHUSDT"  # A's own
WATCHED = (*FROM_KAFKA, IN_PROCESS)
# Updates of each of B's symbols the client gets from A before A dies.
_BEFORE_KILL = 15
# How long the client is away: B publishes meanwhile, and the replay must bring it.
_AWAY_S = 0.5
_LAST_KLINE = FIRST_OPEN + MINUTES * MINUTE


@asynccontextmanager
async def _process(
    replay: ReplayServer, kafka: KafkaSettings, influx: InfluxSettings, topic: str, log: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """Shard 0 as a `finplat price serve` process, serving; killed at the end if still up."""
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "FINPLAT_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FINPLAT_KAFKA_SCHEMA_REGISTRY_URL": kafka.schema_registry_url,
        "FINPLAT_KAFKA_TOPIC": topic,
        "FINPLAT_REDIS_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        "FINPLAT_INFLUX_URL": influx.url,
        "FINPLAT_INFLUX_ORG": influx.org,
        "FINPLAT_INFLUX_BUCKET": influx.bucket,
        "FINPLAT_INFLUX_TOKEN": influx.token.get_secret_value(),
        "FINPLAT_PRICE_GRPC_PORT": str(port),
        "FINPLAT_PRICE_METRICS_PORT": "0",
        "FINPLAT_PRICE_FEED__WS_BASE_URL": replay.ws_url,
        "FINPLAT_PRICE_FEED__REST__BASE_URL": replay.http_url,
        "FINPLAT_PRICE_FEED__SYMBOLS": json.dumps(SYMBOLS),
        "FINPLAT_PRICE_FEED__STREAM_KINDS": json.dumps(["kline_1m"]),
        "FINPLAT_PRICE_FEED__SHARD_INDEX": "0",
        "FINPLAT_PRICE_FEED__SHARD_COUNT": "2",
        "FINPLAT_PRICE_FEED__SERVICE_NAME": _service_name(0),
    }
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            str(FINPLAT), "price", "serve", cwd=REPO_ROOT, env=env, stdout=sink, stderr=sink
        )
    try:
        await _serving(port, process, log)
        yield process, port
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)


async def _serving(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    """Until the process's Kafka reader serves: from then on it streams B's every update."""
    request = health_pb2.HealthCheckRequest(service="finplat.price.kafka_reader")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        async with asyncio.timeout(30):
            while True:
                if process.returncode is not None:
                    pytest.fail(f"shard 0 exited:\n{await asyncio.to_thread(log.read_text)}")
                try:
                    reply = await health.Check(request, timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)


class Client:
    """What the client received, in order, and the last update of each symbol."""

    def __init__(self) -> None:
        self.received: list[market_pb2.PriceUpdate] = []
        self.last: dict[str, market_pb2.PriceUpdate] = {}
        self.count: dict[str, int] = defaultdict(int)

    async def read(self, call: object) -> None:
        """Take the stream's updates until it ends (or fails, which is raised)."""
        async for response in call:  # type: ignore[attr-defined]
            for update in response.prices:
                self.received.append(update)
                self.last[update.symbol] = update
                self.count[update.symbol] += 1


def _times(updates: Iterable[market_pb2.PriceUpdate], symbol: str) -> list[int]:
    return [u.timestamp for u in updates if u.symbol == symbol]


async def test_a_client_resumed_on_another_instance_misses_no_update_and_gets_none_twice(
    start_replay: StartReplay,
    kafka_cluster: Cluster,
    influx_settings: InfluxSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert all(OWNER[symbol] == 1 for symbol in FROM_KAFKA)
    assert OWNER[IN_PROCESS] == 0
    caplog.set_level(logging.INFO, logger="finplat.price.service.api")
    _write_klines(tmp_path, MINUTES)
    replay = await start_replay(
        data_dir=tmp_path,
        symbols=SYMBOLS,
        kline_intervals=("1m",),
        start_ms=FIRST_OPEN - PRE_ROLL_MS,
    )
    kafka = kafka_cluster.kafka
    topic = fresh_topic(kafka)
    feed_b = {
        "symbols": SYMBOLS,
        "stream_kinds": ("kline_1m",),
        "shard_index": 1,
        "shard_count": 2,
        "service_name": _service_name(1),
    }
    client = Client()

    async with (
        _process(replay, kafka, influx_settings, topic, tmp_path / "shard-0.log") as (a, port),
        price_service(replay, kafka, influx_settings, feed_b, topic=topic) as b,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub_a = price_service_pb2_grpc.PriceServiceStub(channel)
        on_a = asyncio.create_task(
            client.read(stub_a.StreamPrices(price_service_pb2.StreamPricesRequest(symbols=WATCHED)))
        )
        await eventually_async(
            lambda: min(client.count[symbol] for symbol in FROM_KAFKA) >= _BEFORE_KILL, 30, 0.01
        )
        a.send_signal(signal.SIGKILL)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await asyncio.wait_for(on_a, 10)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        killed_at = len(client.received)
        await asyncio.sleep(_AWAY_S)

        resumed = b.stub.StreamPrices(
            price_service_pb2.StreamPricesRequest(
                symbols=WATCHED, resume_after=list(client.last.values())
            )
        )
        on_b = asyncio.create_task(client.read(resumed))
        await eventually_async(
            lambda: all(_times(client.received, s)[-1:] == [_LAST_KLINE] for s in FROM_KAFKA),
            30,
            0.01,
        )
        resumed.cancel()
        await asyncio.gather(on_b, return_exceptions=True)

    assert _LAST_KLINE - _times(client.received[:killed_at], FROM_KAFKA[0])[-1] > 10 * MINUTE
    # The client subscribed before the replay's first kline: it has every one.
    every = [FIRST_OPEN + (minute + 1) * MINUTE for minute in range(MINUTES)]
    for symbol in FROM_KAFKA:
        times = _times(client.received, symbol)
        assert times == every, f"{symbol}: missing {sorted(set(every) - set(times))}"
    [resume] = [r for r in caplog.records if r.getMessage() == "stream resumed"]
    assert resume.replayed > 0  # type: ignore[attr-defined]

    # A's own symbol, once each: every update of it A got onto Kafka, and maybe a few more it
    # sent the client in-process and died before producing.
    scoped = kafka.model_copy(update={"topic": topic})
    published = _kafka_updates(scoped, _messages_on(scoped))
    times = _times(client.received, IN_PROCESS)
    assert times == every[: len(times)]
    assert set(_times(published, IN_PROCESS)) <= set(times)

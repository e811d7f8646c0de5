"""`finplat backtest serve` as a process: health, stats and backtests; SIGTERM; a restart keeps
stored runs and counted statistics. Candles come from a fake PriceService in this process."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.longrunning import operations_pb2, operations_pb2_grpc  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import market_pb2, price_service_pb2_grpc
from finplat.backtest.adapters.operation_store import OperationStore
from finplat.core.connections import KafkaSettings
from finplat.core.grpc_security import ChannelSecurity, ServerSecurity, bearer_metadata
from finplat.core.grpc_server import ServiceBinding, start_server
from finplat.kafka.admin import ensure_topic
from finplat.kafka.producer import PriceUpdateProducer
from finplat.kafka.serde import PriceUpdateSerializer, registry_client
from finplat.stack.process import free_ports
from tests.paths import market_data_dir
from tests.support import write_certificates
from tests.unit.backtest.fake_price_service import FakePriceService, btc_candles

pytestmark = pytest.mark.integration

_SERVE = (
    "from finplat.core.logging import configure_logging; configure_logging('INFO'); "
    "from finplat.backtest.cli import backtest; backtest(['serve'])"
)
NOV_1_MS = 1_730_419_200_000


@asynccontextmanager
async def fake_price_service(last_day: date) -> AsyncIterator[str]:
    """The address of a PriceService in this process serving BTCUSDT's real 1m candles from
    2024-11-01 to `last_day`."""
    prices = FakePriceService(
        {"BTCUSDT": btc_candles(market_data_dir(), date(2024, 11, 1), last_day)}
    )
    binding = ServiceBinding(
        "finance.market.v1.PriceService",
        lambda s: price_service_pb2_grpc.add_PriceServiceServicer_to_server(prices, s),
    )
    server = await start_server("127.0.0.1:0", [binding])
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(0)


@pytest_asyncio.fixture
async def price_address() -> AsyncIterator[str]:
    async with fake_price_service(date(2024, 11, 1)) as address:
        yield address


def _service_env(
    kafka: KafkaSettings, port: int, tmp_path: Path, settings: Mapping[str, str]
) -> dict[str, str]:
    """The environment of a `finplat backtest serve` on `port` with its files in `tmp_path`,
    and `settings` besides."""
    return {
        **os.environ,
        "FINPLAT_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FINPLAT_KAFKA_SCHEMA_REGISTRY_URL": kafka.schema_registry_url,
        "FINPLAT_BACKTEST_GRPC_PORT": str(port),
        # A platform started by `make up` may hold the default metrics port.
        "FINPLAT_BACKTEST_METRICS_PORT": "0",
        "FINPLAT_BACKTEST_RESULTS_PATH": str(tmp_path / "results.sqlite3"),
        "FINPLAT_BACKTEST_CONSUMER_STATE_PATH": str(tmp_path / "consumer.sqlite3"),
        **settings,
    }


class Service:
    """The service process; started and stopped by the test."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _SERVE], env=self.env, stdout=sink, stderr=sink
            )

    async def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, 30)
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)


async def _wait_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    async with asyncio.timeout(60):
        while True:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)


async def _wait_total(stub: "backtest_service_pb2_grpc.BacktestServiceAsyncStub", n: int) -> int:
    async with asyncio.timeout(60):
        while True:
            stats = await stub.GetStats(backtest_service_pb2.GetStatsRequest())
            if stats.total_messages >= n:
                return stats.total_messages
            await asyncio.sleep(0.2)


@pytest.mark.asyncio
async def test_serve_stats_backtests_sigterm_and_restart(
    kafka_settings: KafkaSettings, price_address: str, tmp_path: Path
) -> None:
    topic = f"test-backtest-serve-{uuid.uuid4().hex}"
    ensure_topic(kafka_settings, topic, partitions=3)
    settings = kafka_settings.model_copy(update={"topic": topic})
    port = free_ports()[0]
    env = _service_env(
        kafka_settings, port, tmp_path,
        {
            "FINPLAT_KAFKA_TOPIC": topic,
            "FINPLAT_KAFKA_DEAD_LETTER_TOPIC": f"{topic}-dlq",
            "FINPLAT_BACKTEST_CONSUMER_GROUP_ID": f"test-serve-{uuid.uuid4().hex}",
            "FINPLAT_BACKTEST_PRICE_SERVICE_ADDRESS": price_address,
        },
    )  # fmt: skip
    with registry_client(settings) as registry:
        producer = PriceUpdateProducer(settings, PriceUpdateSerializer(registry, topic))
        for index in range(20):
            update = market_pb2.PriceUpdate(
                symbol="BTCUSDT", price=f"{index + 1}.5", volume="1", event_id=str(index)
            )
            producer.send(update)
        assert producer.flush(30) == 0
    service = Service(env, tmp_path / "service.log")
    request = backtest_service_pb2.RunBacktestRequest(
        strategy="sma_crossover",
        data=backtest_pb2.DataRange(symbol="BTCUSDT", interval="1m"),
    )
    request.data.start_time.FromMilliseconds(NOV_1_MS)
    request.data.end_time.FromMilliseconds(NOV_1_MS + 86_400_000)
    try:
        service.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await _wait_serving(channel)
            stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
            counted = await _wait_total(stub, 20)
            created = (await stub.RunBacktest(request)).backtest
        first_exit = await service.terminate()

        service.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await _wait_serving(channel)
            stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
            fetched = await stub.GetBacktest(backtest_service_pb2.GetBacktestRequest(id=created.id))
            restored = (await stub.GetStats(backtest_service_pb2.GetStatsRequest())).total_messages
        second_exit = await service.terminate()
    finally:
        service.kill()

    log = (tmp_path / "service.log").read_text()
    assert counted == 20
    assert created.bar_count == 1440
    assert fetched.backtest == created
    assert restored == 20
    assert (first_exit, second_exit) == (0, 0)
    assert log.count('"consumer closed"') == 2
    assert log.count('"gRPC server stopped"') == 2


@pytest.mark.asyncio
async def test_behind_a_token_and_tls_it_refuses_strangers_and_dials_the_price_service_so(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    # One CA signs both servers' certificates; one token guards both, as `finplat up` sets it.
    ca, chain, key = write_certificates(tmp_path, "127.0.0.1")
    token = SecretStr("backtest-door-key")
    prices = FakePriceService(
        {"BTCUSDT": btc_candles(market_data_dir(), date(2024, 11, 1), date(2024, 11, 1))}
    )
    binding = ServiceBinding(
        "finance.market.v1.PriceService",
        lambda s: price_service_pb2_grpc.add_PriceServiceServicer_to_server(prices, s),
    )
    guarded = ServerSecurity(api_token=token, tls_cert_file=chain, tls_key_file=key)
    price_server = await start_server("127.0.0.1:0", [binding], security=guarded)
    port = free_ports()[0]
    env = _service_env(
        kafka_settings, port, tmp_path,
        {
            "FINPLAT_BACKTEST_CONSUMER_ENABLED": "false",
            "FINPLAT_BACKTEST_API_TOKEN": token.get_secret_value(),
            "FINPLAT_BACKTEST_TLS_CERT_FILE": str(chain),
            "FINPLAT_BACKTEST_TLS_KEY_FILE": str(key),
            "FINPLAT_BACKTEST_TLS_CA_FILE": str(ca),
            "FINPLAT_BACKTEST_PRICE_SERVICE_ADDRESS": f"127.0.0.1:{price_server.port}",
            "FINPLAT_BACKTEST_PRICE_SERVICE_API_TOKEN": token.get_secret_value(),
        },
    )  # fmt: skip
    service = Service(env, tmp_path / "service.log")
    request = backtest_service_pb2.RunBacktestRequest(
        strategy="sma_crossover", data=backtest_pb2.DataRange(symbol="BTCUSDT", interval="1m")
    )
    request.data.start_time.FromMilliseconds(NOV_1_MS)
    request.data.end_time.FromMilliseconds(NOV_1_MS + 86_400_000)
    address = f"127.0.0.1:{port}"
    try:
        service.start()
        async with ChannelSecurity(tls_ca_file=ca).open_channel(address) as tls:
            await _wait_serving(tls)
            stub = backtest_service_pb2_grpc.BacktestServiceStub(tls)
            ran = await stub.RunBacktest(request, metadata=bearer_metadata(token))
            with pytest.raises(grpc.aio.AioRpcError) as without_token:
                await stub.GetStats(backtest_service_pb2.GetStatsRequest(), timeout=5)
        async with grpc.aio.insecure_channel(address) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as over_plaintext:
                await backtest_service_pb2_grpc.BacktestServiceStub(plaintext).GetStats(
                    backtest_service_pb2.GetStatsRequest(),
                    metadata=bearer_metadata(token),
                    timeout=5,
                )
        exit_code = await service.terminate()
    finally:
        service.kill()
        await price_server.stop(0)

    # The backtest read its 1,440 bars through the price service's TLS port, with the token.
    assert ran.backtest.bar_count == 1440
    assert without_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert over_plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    assert exit_code == 0


def _fault_updates(count: int) -> list[market_pb2.PriceUpdate]:
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    return [
        market_pb2.PriceUpdate(
            symbol=symbols[index % 3],
            price=f"{100 + index % 997}.{index % 100:02d}",
            volume=f"0.{index % 1000:03d}1",
            timestamp=1_730_419_200_000 + index,
            event_id=f"fault-{index}",
        )
        for index in range(count)
    ]


def _produce_steadily(settings: KafkaSettings, updates: list[market_pb2.PriceUpdate]) -> None:
    """Produce `updates` at about 5,000 a second, so a kill lands while they still arrive."""
    with registry_client(settings) as registry:
        producer = PriceUpdateProducer(settings, PriceUpdateSerializer(registry, settings.topic))
        for index, update in enumerate(updates):
            producer.send(update)
            if index % 500 == 499:
                time.sleep(0.1)
        assert producer.flush(30) == 0


def assert_counted_once(
    stats: backtest_service_pb2.GetStatsResponse, sent: list[market_pb2.PriceUpdate]
) -> None:
    """GetStats counted each of `_fault_updates` once: totals and per-symbol figures."""
    assert (stats.total_messages, stats.duplicates, stats.dead_lettered) == (len(sent), 0, 0)
    assert {s.symbol for s in stats.symbols} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    for symbol_stats in stats.symbols:
        mine = [u for u in sent if u.symbol == symbol_stats.symbol]
        prices = [Decimal(u.price) for u in mine]
        assert symbol_stats.count == len(mine)
        assert Decimal(symbol_stats.volume) == sum(Decimal(u.volume) for u in mine)
        assert Decimal(symbol_stats.min_price) == min(prices)
        assert Decimal(symbol_stats.max_price) == max(prices)


@pytest.mark.asyncio
async def test_killed_with_sigkill_mid_stream_it_neither_loses_nor_double_counts(
    kafka_settings: KafkaSettings, price_address: str, tmp_path: Path
) -> None:
    topic = f"test-backtest-kill-{uuid.uuid4().hex}"
    ensure_topic(kafka_settings, topic, partitions=3)
    settings = kafka_settings.model_copy(update={"topic": topic})
    port = free_ports()[0]
    env = _service_env(
        kafka_settings, port, tmp_path,
        {
            "FINPLAT_KAFKA_TOPIC": topic,
            "FINPLAT_KAFKA_DEAD_LETTER_TOPIC": f"{topic}-dlq",
            "FINPLAT_BACKTEST_CONSUMER_GROUP_ID": f"test-kill-{uuid.uuid4().hex}",
            "FINPLAT_BACKTEST_PRICE_SERVICE_ADDRESS": price_address,
            # Small batches: the kill lands between many committed transactions, not after one.
            "FINPLAT_BACKTEST_POLL_MAX_MESSAGES": "200",
            # Static membership: the restarted service takes the partitions back at once.
            "FINPLAT_BACKTEST_CONSUMER_INSTANCE_ID": "test-kill",
        },
    )  # fmt: skip
    sent = _fault_updates(12_000)
    service = Service(env, tmp_path / "service.log")
    try:
        service.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await _wait_serving(channel)
            stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
            producing = asyncio.create_task(asyncio.to_thread(_produce_steadily, settings, sent))
            before_kill = await _wait_total(stub, 2_000)
        assert service.process is not None
        service.process.send_signal(signal.SIGKILL)
        killed = await asyncio.to_thread(service.process.wait, 30)
        service.process = None
        await producing

        service.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await _wait_serving(channel)
            stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
            await _wait_total(stub, len(sent))
            # A little longer: a double count would show as a total beyond what was sent.
            await asyncio.sleep(1.0)
            stats = await stub.GetStats(backtest_service_pb2.GetStatsRequest())
        await service.terminate()
    finally:
        service.kill()

    assert killed == -signal.SIGKILL
    assert before_kill < len(sent)  # the kill came mid-stream
    assert_counted_once(stats, sent)


def _progress(operation: Any) -> backtest_service_pb2.SweepProgress:
    progress = backtest_service_pb2.SweepProgress()
    assert operation.metadata.Unpack(progress)
    return progress


@pytest.mark.asyncio
async def test_killed_mid_sweep_the_restart_resumes_from_every_kept_chunk(
    kafka_settings: KafkaSettings, price_address: str, tmp_path: Path
) -> None:
    port = free_ports()[0]
    results = tmp_path / "results.sqlite3"
    env = _service_env(
        kafka_settings, port, tmp_path,
        {
            "FINPLAT_BACKTEST_CONSUMER_ENABLED": "false",
            "FINPLAT_BACKTEST_PRICE_SERVICE_ADDRESS": price_address,
        },
    )  # fmt: skip
    sweep = backtest_service_pb2.RunSweepRequest(
        strategy="sma_crossover",
        grid={"fast": backtest_pb2.ParameterRange(start=1, stop=40, step=1),
              "slow": backtest_pb2.ParameterRange(start=2, stop=200, step=1)},
        data=backtest_pb2.DataRange(symbol="BTCUSDT", interval="1m"),
    )  # fmt: skip
    sweep.data.start_time.FromMilliseconds(NOV_1_MS)
    sweep.data.end_time.FromMilliseconds(NOV_1_MS + 86_400_000)
    service = Service(env, tmp_path / "service.log")
    try:
        service.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await _wait_serving(channel)
            stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
            started = await stub.StartSweep(backtest_service_pb2.StartSweepRequest(sweep=sweep))
            watch = backtest_service_pb2.WatchOperationRequest(name=started.name)
            async for operation in stub.WatchOperation(watch):
                if _progress(operation).done_combinations >= 2000:
                    break
        service.kill()  # SIGKILL in the middle of the sweep
        store = await OperationStore.open(results)
        kept = sum(len(chunk.metrics) for chunk in (await store.chunks(started.name)).values())
        await store.close()

        service.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await _wait_serving(channel)
            operations = operations_pb2_grpc.OperationsStub(channel)
            get = operations_pb2.GetOperationRequest(name=started.name)
            resumed = await operations.GetOperation(get)
            ended = await operations.WaitOperation(
                operations_pb2.WaitOperationRequest(name=started.name), timeout=120
            )
            stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
            direct = (await stub.RunSweep(sweep)).sweep
        await service.terminate()
    finally:
        service.kill()

    swept = backtest_pb2.Sweep()
    assert ended.response.Unpack(swept)
    total = _progress(ended).total_combinations
    assert 1000 <= kept < total
    assert _progress(resumed).done_combinations >= kept
    assert _progress(ended).done_combinations == total == len(direct.results)
    assert [(dict(r.parameters), r.metrics) for r in swept.results] == [
        (dict(r.parameters), r.metrics) for r in direct.results
    ]
    assert "resumed 1 unfinished operation(s)" in (tmp_path / "service.log").read_text()

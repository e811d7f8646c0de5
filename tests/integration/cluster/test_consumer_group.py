"""Two `finplat backtest serve` processes in one consumer group on the 3-node cluster, their
statistics' state in one PostgreSQL database. One is killed with SIGKILL mid-stream and
started again; afterwards GetStats on either answers for the whole stream, exactly: every
update counted once, the per-symbol figures those of what was sent.
"""

import asyncio
import signal
import uuid
from pathlib import Path

import grpc
import pytest

from finance.backtest.v1 import backtest_service_pb2, backtest_service_pb2_grpc
from finplat.kafka.admin import ensure_topic
from finplat.stack.process import free_ports
from tests.integration.backtest.conftest import fresh_database_url
from tests.integration.backtest.test_service_process import (
    Service,
    _fault_updates,
    _produce_steadily,
    _service_env,
    _wait_serving,
    _wait_total,
    assert_counted_once,
    price_address,
)
from tests.integration.cluster.conftest import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.asyncio]

# Fixtures of tests/integration/backtest, found here only when imported.
__all__ = ["fresh_database_url", "price_address"]

SENT = 12_000


def _counted(stats: backtest_service_pb2.GetStatsResponse) -> tuple[object, ...]:
    """What GetStats counted: not the uptime, the rates or the lag, which are the member's."""
    symbols = tuple(
        (s.symbol, s.count, s.first_event_time.ToMilliseconds(), s.last_event_time.ToMilliseconds(),
         s.last_price, s.min_price, s.max_price, s.volume)
        for s in stats.symbols
    )  # fmt: skip
    return (stats.total_messages, stats.decode_errors, stats.dead_lettered, stats.duplicates,
            symbols)  # fmt: skip


async def _stats(port: int) -> backtest_service_pb2.GetStatsResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await _wait_serving(channel)
        stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
        await _wait_total(stub, SENT)
        # A little longer: a double count would show as a total beyond what was sent.
        await asyncio.sleep(1.0)
        return await stub.GetStats(backtest_service_pb2.GetStatsRequest())


async def test_two_members_one_killed_and_restarted_count_every_update_once(
    kafka_cluster: Cluster, price_address: str, fresh_database_url: str, tmp_path: Path
) -> None:
    topic = f"test-group-{uuid.uuid4().hex}"
    ensure_topic(kafka_cluster.kafka, topic, partitions=6)
    kafka = kafka_cluster.kafka.model_copy(update={"topic": topic})
    group = f"test-group-{uuid.uuid4().hex}"
    ports = free_ports(2)
    services = []
    for member, port in enumerate(ports):
        env = _service_env(
            kafka, port, tmp_path / f"member-{member}",
            {
                "FINPLAT_KAFKA_TOPIC": topic,
                "FINPLAT_KAFKA_DEAD_LETTER_TOPIC": f"{topic}-dlq",
                "FINPLAT_BACKTEST_CONSUMER_GROUP_ID": group,
                "FINPLAT_BACKTEST_DATABASE_URL": fresh_database_url,
                "FINPLAT_BACKTEST_PRICE_SERVICE_ADDRESS": price_address,
                # Small batches: the kill lands between many committed transactions.
                "FINPLAT_BACKTEST_POLL_MAX_MESSAGES": "200",
                # Static membership: the restarted member takes its partitions back at once.
                "FINPLAT_BACKTEST_CONSUMER_INSTANCE_ID": f"member-{member}",
            },
        )  # fmt: skip
        (tmp_path / f"member-{member}").mkdir()
        services.append(Service(env, tmp_path / f"member-{member}.log"))
    sent = _fault_updates(SENT)
    victim = services[0]
    try:
        for service in services:
            service.start()
        for port in ports:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await _wait_serving(channel)
        producing = asyncio.create_task(asyncio.to_thread(_produce_steadily, kafka, sent))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[1]}") as channel:
            stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
            before_kill = await _wait_total(stub, 3_000)
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        killed = await asyncio.to_thread(victim.process.wait, 30)
        victim.process = None
        victim.start()
        await producing

        answers = [await _stats(port) for port in ports]
        for service in services:
            await service.terminate()
    finally:
        for service in services:
            service.kill()

    assert killed == -signal.SIGKILL
    assert before_kill < SENT  # the kill came mid-stream
    # Either member answers for the whole group.
    assert _counted(answers[0]) == _counted(answers[1])
    assert_counted_once(answers[0], sent)

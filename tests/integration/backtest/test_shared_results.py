"""Two `finplat backtest serve` processes on one PostgreSQL database
(`FINPLAT_BACKTEST_DATABASE_URL`): what one stores, the other lists and gets; an operation runs
on one of them, the other follows and cancels it, and takes it over when the first is killed."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.longrunning import operations_pb2, operations_pb2_grpc  # type: ignore[import-untyped]
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import make_url

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finplat.stack.process import free_ports
from tests.integration.backtest.test_service_process import (
    _SERVE,
    NOV_1_MS,
    _progress,
    _wait_serving,
    fake_price_service,
)

pytestmark = [pytest.mark.integration, pytest.mark.scaleout, pytest.mark.asyncio]

DAY_MS = 86_400_000
# Short leases: a killed instance's operations are taken over within 3 s and a round (1 s).
LEASE_S = 3


@pytest_asyncio.fixture
async def price_address() -> AsyncIterator[str]:
    # November 2024 (43,200 bars): sweeps of seconds.
    async with fake_price_service(date(2024, 11, 30)) as address:
        yield address


@dataclass
class _Served:
    log: Path
    process: "subprocess.Popen[bytes]"

    def records(self, message: str) -> list[dict[str, Any]]:
        """The JSON log records of ``message``."""
        lines = self.log.read_text().splitlines()
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        return [entry for entry in entries if entry["message"] == message]


@contextmanager
def _serving(
    tmp_path: Path, name: str, port: int, database_url: str, price_address: str
) -> Iterator[_Served]:
    """A service on `port`, its results in `database_url`, its log in a file; SIGTERM on the
    way out, after which it must end cleanly (unless the test has killed it)."""
    log = tmp_path / f"{name}.log"
    env = {
        **os.environ,
        "FINPLAT_BACKTEST_GRPC_PORT": str(port),
        "FINPLAT_BACKTEST_METRICS_PORT": "0",
        "FINPLAT_BACKTEST_CONSUMER_ENABLED": "false",
        "FINPLAT_BACKTEST_PRICE_SERVICE_ADDRESS": price_address,
        "FINPLAT_BACKTEST_DATABASE_URL": database_url,
        # Set, so that a service that used the file instead would leave it behind.
        "FINPLAT_BACKTEST_RESULTS_PATH": str(tmp_path / f"{name}.sqlite3"),
        "FINPLAT_BACKTEST_CONSUMER_STATE_PATH": str(tmp_path / f"{name}-consumer.sqlite3"),
        "FINPLAT_BACKTEST_OPERATION_LEASE_S": str(LEASE_S),
        "FINPLAT_BACKTEST_MAX_SWEEP_COMBINATIONS": "200000",
    }
    with log.open("ab") as sink:
        process = subprocess.Popen([sys.executable, "-c", _SERVE], env=env, stdout=sink,
                                   stderr=sink)  # fmt: skip
    try:
        yield _Served(log, process)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _run_request() -> backtest_service_pb2.RunBacktestRequest:
    request = backtest_service_pb2.RunBacktestRequest(
        strategy="sma_crossover",
        data=backtest_pb2.DataRange(symbol="BTCUSDT", interval="1m"),
    )
    request.data.start_time.FromMilliseconds(NOV_1_MS)
    request.data.end_time.FromMilliseconds(NOV_1_MS + 86_400_000)
    return request


def _sweep_request() -> backtest_service_pb2.StartSweepRequest:
    sweep = backtest_service_pb2.RunSweepRequest(
        strategy="sma_crossover",
        grid={"fast": backtest_pb2.ParameterRange(start=5, stop=10, step=5),
              "slow": backtest_pb2.ParameterRange(start=20, stop=30, step=10)},
        data=_run_request().data, rank_by="sharpe",
    )  # fmt: skip
    return backtest_service_pb2.StartSweepRequest(sweep=sweep)


def _long_sweep(fast: int, slow: int) -> backtest_service_pb2.RunSweepRequest:
    """fast 1..`fast` x slow 2..`slow` over November 2024, its best 20 kept: seconds of work."""
    sweep = backtest_service_pb2.RunSweepRequest(
        strategy="sma_crossover",
        grid={"fast": backtest_pb2.ParameterRange(start=1, stop=fast, step=1),
              "slow": backtest_pb2.ParameterRange(start=2, stop=slow, step=1)},
        data=backtest_pb2.DataRange(symbol="BTCUSDT", interval="1m"), rank_by="sharpe", top_n=20,
    )  # fmt: skip
    sweep.data.start_time.FromMilliseconds(NOV_1_MS)
    sweep.data.end_time.FromMilliseconds(NOV_1_MS + 30 * DAY_MS)
    return sweep


async def _until_done_at_least(channel: grpc.aio.Channel, name: str, count: int) -> None:
    stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
    watch = backtest_service_pb2.WatchOperationRequest(name=name)
    async for operation in stub.WatchOperation(watch):
        assert not operation.done, operation
        if _progress(operation).done_combinations >= count:
            return


async def _logged(served: _Served, message: str) -> None:
    """Once ``served`` has logged ``message``."""
    async with asyncio.timeout(30):
        while True:
            if served.records(message):
                return
            await asyncio.sleep(0.1)


def _wait_request(name: str, seconds: int) -> operations_pb2.WaitOperationRequest:
    return operations_pb2.WaitOperationRequest(name=name, timeout=Duration(seconds=seconds))


async def test_a_second_instance_lists_and_gets_what_the_first_stored(
    fresh_database_url: str, price_address: str, tmp_path: Path
) -> None:
    first_port, second_port = free_ports(2)
    with (
        _serving(tmp_path, "first", first_port, fresh_database_url, price_address) as first_served,
        _serving(
            tmp_path, "second", second_port, fresh_database_url, price_address
        ) as second_served,
    ):
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{first_port}") as first,
            grpc.aio.insecure_channel(f"127.0.0.1:{second_port}") as second,
        ):
            await asyncio.gather(_wait_serving(first), _wait_serving(second))
            first_api = backtest_service_pb2_grpc.BacktestServiceStub(first)
            second_api = backtest_service_pb2_grpc.BacktestServiceStub(second)
            created = (await first_api.RunBacktest(_run_request())).backtest
            listed = await second_api.ListBacktests(backtest_service_pb2.ListBacktestsRequest())
            fetched = await second_api.GetBacktest(
                backtest_service_pb2.GetBacktestRequest(id=created.id)
            )
            # An operation too: started and finished on the first, read on the second.
            started = await first_api.StartSweep(_sweep_request())
            timeout = Duration(seconds=60)
            ended = await operations_pb2_grpc.OperationsStub(first).WaitOperation(
                operations_pb2.WaitOperationRequest(name=started.name, timeout=timeout)
            )
            second_operations = operations_pb2_grpc.OperationsStub(second)
            seen = await second_operations.GetOperation(
                operations_pb2.GetOperationRequest(name=started.name)
            )
            sweep = backtest_pb2.Sweep()
            assert ended.response.Unpack(sweep)
            stored_sweep = await second_api.ExportSweep(
                backtest_service_pb2.ExportSweepRequest(id=sweep.id)
            )

    password = make_url(fresh_database_url).password
    logs = first_served.log.read_text() + second_served.log.read_text()
    assert created.bar_count == 1440
    assert [run.id for run in listed.backtests] == [created.id]
    assert fetched.backtest == created
    assert ended.done
    assert not ended.HasField("error")
    assert seen == ended
    assert stored_sweep.file.data.startswith(b"PAR1")
    # Neither used a SQLite file, and neither logged the password.
    assert await asyncio.to_thread(lambda: list(tmp_path.glob("*.sqlite3*"))) == []
    assert logs.count("results stored in postgresql+psycopg://finplat:***@") == 2
    assert password
    assert password not in logs


async def test_an_operation_runs_on_one_instance_while_another_follows_and_cancels_it(
    fresh_database_url: str, price_address: str, tmp_path: Path
) -> None:
    first_port, second_port = free_ports(2)
    with _serving(tmp_path, "first", first_port, fresh_database_url, price_address) as first:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first_port}") as first_channel:
            await _wait_serving(first_channel)
            first_api = backtest_service_pb2_grpc.BacktestServiceStub(first_channel)
            # 56,175 combinations, cancelled long before the end; then a small one.
            big = await first_api.StartSweep(
                backtest_service_pb2.StartSweepRequest(sweep=_long_sweep(150, 450))
            )
            small = await first_api.StartSweep(_sweep_request())
            # Started once the first holds both: it must leave them to it.
            with _serving(
                tmp_path, "second", second_port, fresh_database_url, price_address
            ) as second:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{second_port}") as channel:
                    await _wait_serving(channel)
                    # Watched on the second, from the store the first writes.
                    await _until_done_at_least(channel, big.name, 1)
                    operations = operations_pb2_grpc.OperationsStub(channel)
                    get = operations_pb2.GetOperationRequest(name=big.name)
                    before = await operations.GetOperation(get)
                    await asyncio.sleep(LEASE_S / 2)
                    after = await operations.GetOperation(get)
                    await operations.CancelOperation(
                        operations_pb2.CancelOperationRequest(name=big.name)
                    )
                    cancelled = await operations.WaitOperation(_wait_request(big.name, 10))
                    ended = await operations.WaitOperation(_wait_request(small.name, 30))
            seen_by_first = await operations_pb2_grpc.OperationsStub(first_channel).GetOperation(
                operations_pb2.GetOperationRequest(name=small.name)
            )

    # The first ran it all along, and the second took nothing over.
    assert _progress(before).done_combinations < _progress(after).done_combinations
    assert not after.done
    assert second.records("operation resumed") == []
    assert cancelled.done
    assert cancelled.error.code == grpc.StatusCode.CANCELLED.value[0]
    assert _progress(cancelled).done_combinations < _progress(cancelled).total_combinations
    assert ended.done
    assert not ended.HasField("error")
    assert ended == seen_by_first
    # Its result computed and stored once, by the first.
    assert [r["operation"] for r in first.records("sweep operation done")] == [small.name]
    assert second.records("sweep operation done") == []


async def test_a_killed_instances_operation_is_taken_over_within_a_lease_and_a_round(
    fresh_database_url: str, price_address: str, tmp_path: Path
) -> None:
    first_port, second_port = free_ports(2)
    sweep = _long_sweep(60, 300)  # 16,170 combinations
    with (
        _serving(tmp_path, "first", first_port, fresh_database_url, price_address) as first,
        _serving(tmp_path, "second", second_port, fresh_database_url, price_address) as second,
    ):
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{first_port}") as first_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{second_port}") as channel,
        ):
            await asyncio.gather(_wait_serving(first_channel), _wait_serving(channel))
            first_api = backtest_service_pb2_grpc.BacktestServiceStub(first_channel)
            started = await first_api.StartSweep(
                backtest_service_pb2.StartSweepRequest(sweep=sweep)
            )
            await _until_done_at_least(first_channel, started.name, 3000)
            first.process.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await _logged(second, "operation resumed")
            took = time.monotonic() - killed
            operations = operations_pb2_grpc.OperationsStub(channel)
            ended = await operations.WaitOperation(_wait_request(started.name, 60), timeout=65)
            api = backtest_service_pb2_grpc.BacktestServiceStub(channel)
            direct = (await api.RunSweep(sweep)).sweep

    swept = backtest_pb2.Sweep()
    assert ended.response.Unpack(swept)
    assert first.process.returncode == -signal.SIGKILL
    assert [r["operation"] for r in second.records("operation resumed")] == [started.name]
    # Its lease, renewed a round before the kill at most, expired; the next round took it.
    assert took < LEASE_S + LEASE_S / 3 + 1.5
    assert _progress(ended).done_combinations == _progress(ended).total_combinations == 16_170
    assert [(dict(r.parameters), r.metrics) for r in swept.results] == [
        (dict(r.parameters), r.metrics) for r in direct.results
    ]
    assert first.records("sweep operation done") == []
    assert [r["operation"] for r in second.records("sweep operation done")] == [started.name]

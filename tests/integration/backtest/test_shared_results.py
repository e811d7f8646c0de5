"""Two `finplat backtest serve` processes on one PostgreSQL database
(`FINPLAT_BACKTEST_DATABASE_URL`): what one stores, the other lists and gets."""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from google.longrunning import operations_pb2, operations_pb2_grpc  # type: ignore[import-untyped]
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import make_url

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import price_service_pb2_grpc
from finplat.core.grpc_server import ServiceBinding, start_server
from finplat.stack.process import free_ports
from tests.paths import market_data_dir
from tests.unit.backtest.fake_price_service import FakePriceService, btc_candles

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

_SERVE = (
    "from finplat.core.logging import configure_logging; configure_logging('INFO'); "
    "from finplat.backtest.cli import backtest; backtest(['serve'])"
)
NOV_1_MS = 1_730_419_200_000


@pytest_asyncio.fixture
async def price_address() -> AsyncIterator[str]:
    prices = FakePriceService(
        {"BTCUSDT": btc_candles(market_data_dir(), date(2024, 11, 1), date(2024, 11, 1))}
    )
    binding = ServiceBinding(
        "finance.market.v1.PriceService",
        lambda s: price_service_pb2_grpc.add_PriceServiceServicer_to_server(prices, s),
    )
    server = await start_server("127.0.0.1:0", [binding])
    yield f"127.0.0.1:{server.port}"
    await server.stop(0)


@contextmanager
def _serving(
    tmp_path: Path, name: str, port: int, database_url: str, price_address: str
) -> Iterator[Path]:
    """A service on `port`, its results in `database_url` and its log in the returned file;
    SIGTERM on the way out (it must end cleanly)."""
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
    }
    with log.open("ab") as sink:
        process = subprocess.Popen([sys.executable, "-c", _SERVE], env=env, stdout=sink,
                                   stderr=sink)  # fmt: skip
    try:
        yield log
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


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


async def test_a_second_instance_lists_and_gets_what_the_first_stored(
    fresh_database_url: str, price_address: str, tmp_path: Path
) -> None:
    first_port, second_port = free_ports(2)
    with (
        _serving(tmp_path, "first", first_port, fresh_database_url, price_address) as first_log,
        _serving(tmp_path, "second", second_port, fresh_database_url, price_address) as second_log,
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
    logs = first_log.read_text() + second_log.read_text()
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

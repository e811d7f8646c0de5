"""`finplat backtest sweep` against the real backtest service on an in-process gRPC server (bars
from the tests' fake price service: one real day of BTCUSDT 1m).

CliRunner blocks, as the command's gRPC calls do: it runs in a thread beside the servers' loop.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import pytest_asyncio
from click.testing import CliRunner, Result
from google.longrunning import operations_pb2, operations_pb2_grpc  # type: ignore[import-untyped]
from google.protobuf.duration_pb2 import Duration

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import price_service_pb2_grpc
from finplat.backtest.adapters.history import PriceServiceBars
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.cli import assignments, backtest
from finplat.backtest.service.runs import Limits
from finplat.client import SweepOperation, SweepProgress
from finplat.core.grpc_server import ServiceBinding, start_server
from tests.backtest_server import backtest_server
from tests.unit.backtest.api_harness import DAY_MS, NOV_1_MS, FakeStats, run_request
from tests.unit.backtest.fake_price_service import FakePriceService, btc_candles

pytestmark = pytest.mark.asyncio(loop_scope="module")

_DAY = ["--symbol", "BTCUSDT", "--interval", "1m", "--start", "2024-11-01", "--end", "2024-11-02"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def address(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The backtest service's address (`api_harness` keeps its own to itself)."""
    prices = FakePriceService(
        {"BTCUSDT": btc_candles(data_dir, date(2024, 11, 1), date(2024, 11, 1))}
    )
    price_server = await start_server(
        "127.0.0.1:0",
        [ServiceBinding(
            "finance.market.v1.PriceService",
            lambda s: price_service_pb2_grpc.add_PriceServiceServicer_to_server(prices, s),
        )],
    )  # fmt: skip
    path = tmp_path_factory.mktemp("sweep_cli") / "results.sqlite3"
    store = await ResultStore.open(path)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{price_server.port}") as channel:
        bars = PriceServiceBars(price_service_pb2_grpc.PriceServiceStub(channel))
        async with backtest_server(FakeStats(), bars, store, path, Limits()) as served:
            yield served.address
    await price_server.stop(0)
    await store.close()


async def _invoke(address: str, *args: str) -> Result:
    return await asyncio.to_thread(
        CliRunner().invoke, backtest, ["sweep", "--server", address, *_DAY, *args]
    )


async def _run_sweep(address: str, grid: dict[str, tuple[float, float, float]]) -> Any:
    """The same sweep run at once by RunSweep (the CLI's defaults: initial cash 10,000)."""
    request = backtest_service_pb2.RunSweepRequest(
        strategy="sma_crossover",
        grid={name: backtest_pb2.ParameterRange(start=a, stop=b, step=c)
              for name, (a, b, c) in grid.items()},
        data=backtest_pb2.DataRange(symbol="BTCUSDT", interval="1m"),
        config=backtest_pb2.BacktestConfig(
            initial_cash=10_000, fee_bps=10, mode=backtest_pb2.POSITION_MODE_LONG_ONLY
        ),
        rank_by="sharpe",
    )  # fmt: skip
    request.data.start_time.FromMilliseconds(NOV_1_MS)
    request.data.end_time.FromMilliseconds(NOV_1_MS + DAY_MS)
    async with grpc.aio.insecure_channel(address) as channel:
        return (
            await backtest_service_pb2_grpc.BacktestServiceStub(channel).RunSweep(request)
        ).sweep


async def _waited(address: str, name: str) -> Any:
    timeout = Duration(seconds=10)
    async with grpc.aio.insecure_channel(address) as channel:
        return await operations_pb2_grpc.OperationsStub(channel).WaitOperation(
            operations_pb2.WaitOperationRequest(name=name, timeout=timeout), timeout=15
        )


async def test_a_sweep_prints_its_name_its_progress_and_its_best_results(address: str) -> None:
    result = await _invoke(
        address, "--strategy", "sma_crossover", "--grid", "fast=1:6:1", "--grid", "slow=2:8:1",
        "--fee-bps", "10", "--show", "3",
    )  # fmt: skip
    direct = await _run_sweep(address, {"fast": (1, 6, 1), "slow": (2, 8, 1)})

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    name = lines[0]
    assert name.startswith("operations/")
    assert (await _waited(address, name)).done
    # 6 x 7 pairs, less the 15 with fast >= slow.
    assert any(line.startswith("27/27 combinations in ") for line in lines)
    best = direct.results[0]
    assert f"best by sharpe ({best.metrics.sharpe:,.6g}): fast={best.parameters['fast']:g} " in (
        result.output
    )
    assert assignments(best.parameters) in result.output
    table = lines.index(next(line for line in lines if line.lstrip().startswith("#")))
    assert lines[table].split() == ["#", "fast", "slow", "sharpe", "total_return",
                                    "max_drawdown", "trade_count"]  # fmt: skip
    assert lines[table + 1].split()[1:3] == [
        f"{best.parameters['fast']:g}",
        f"{best.parameters['slow']:g}",
    ]
    assert lines[table + 4] == "... and 24 more"
    assert f"stored as sweep {name.removeprefix('operations/')}" in result.output


async def test_a_detached_sweep_prints_its_name_and_runs_on(address: str) -> None:
    result = await _invoke(
        address, "--strategy", "sma_crossover", "--grid", "fast=1:3:1", "--grid", "slow=4:5:1",
        "--detach",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    (name,) = result.output.splitlines()
    ended = await _waited(address, name)
    assert ended.done
    assert not ended.HasField("error")


async def test_an_invalid_grid_exits_with_the_services_status(address: str) -> None:
    backwards = await _invoke(address, "--strategy", "sma_crossover", "--grid", "fast=9:3:1")
    malformed = await _invoke(address, "--strategy", "sma_crossover", "--grid", "fast=3")

    assert backwards.exit_code == 1
    assert "StartSweep: INVALID_ARGUMENT: grid.fast: stop must be >= start" in backwards.output
    assert malformed.exit_code == 2
    assert "expected NAME=START:STOP:STEP" in malformed.output


async def test_ctrl_c_while_following_cancels_the_operation(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    follow = SweepOperation.follow

    def interrupted(operation: SweepOperation) -> Iterator[SweepProgress]:
        for progress in follow(operation):
            yield progress
            if progress.done > 0:
                raise KeyboardInterrupt

    monkeypatch.setattr(SweepOperation, "follow", interrupted)
    result = await _invoke(
        address, "--strategy", "sma_crossover", "--grid", "fast=1:50:1", "--grid", "slow=2:200:1"
    )

    assert result.exit_code == 130, result.output
    name = result.output.splitlines()[0]
    assert f"cancelled {name}" in result.output
    ended = await _waited(address, name)
    assert ended.done
    assert ended.error.code == grpc.StatusCode.CANCELLED.value[0]


async def test_export_writes_a_stored_sweeps_and_backtests_tables_by_suffix(
    address: str, tmp_path: Path
) -> None:
    swept = await _run_sweep(address, {"fast": (5, 10, 5), "slow": (20, 40, 20)})
    run = run_request(end_ms=NOV_1_MS + DAY_MS)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
        stored = (await stub.RunBacktest(run)).backtest
        served = await stub.ExportSweep(backtest_service_pb2.ExportSweepRequest(id=swept.id))

    def export(*args: str) -> Result:
        return CliRunner().invoke(backtest, ["export", "--server", address, *args])

    sweep_file, trades_file = tmp_path / "sweep.parquet", tmp_path / "trades.csv"
    sweep_out = await asyncio.to_thread(export, "sweep", swept.id, "-o", str(sweep_file))
    trades_out = await asyncio.to_thread(
        export, "backtest-trades", stored.id, "-o", str(trades_file)
    )
    whole_file = tmp_path / "whole.csv"
    whole_out = await asyncio.to_thread(export, "sweep-all", swept.id, "-o", str(whole_file))
    unknown = await asyncio.to_thread(export, "sweep", "nope", "-o", str(tmp_path / "x.csv"))
    unknown_whole = await asyncio.to_thread(
        export, "sweep-all", "nope", "-o", str(tmp_path / "y.csv")
    )
    badly_named = await asyncio.to_thread(export, "sweep", swept.id, "-o", str(tmp_path / "x.xls"))

    assert sweep_out.exit_code == 0, sweep_out.output
    assert sweep_file.read_bytes() == served.file.data
    assert trades_out.exit_code == 0, trades_out.output
    lines = trades_file.read_text().splitlines()
    assert lines[0].startswith('"side","entry_time","exit_time"')
    assert len(lines) == 1 + len(stored.trades)
    # Every combination of fast 5, 10 x slow 20, 40, in grid order; the ranked table's rows.
    whole = pa_csv.read_csv(whole_file)
    ranked = pq.read_table(sweep_file)
    assert whole_out.exit_code == 0, whole_out.output
    assert list(zip(whole["fast"].to_pylist(), whole["slow"].to_pylist(), strict=True)) == [
        (5, 20), (5, 40), (10, 20), (10, 40),
    ]  # fmt: skip
    assert sorted(whole.to_pylist(), key=str) == sorted(ranked.to_pylist(), key=str)
    assert unknown_whole.exit_code == 1
    assert "DownloadSweepTable: NOT_FOUND: no sweep with id 'nope'" in unknown_whole.output
    assert not (tmp_path / "y.csv").exists()
    assert not (tmp_path / "y.csv.partial").exists()
    assert unknown.exit_code == 1
    assert "ExportSweep: NOT_FOUND: no sweep with id 'nope'" in unknown.output
    assert badly_named.exit_code == 2
    assert "must end in .parquet or .csv" in badly_named.output

"""`finplat.client.Platform`, the notebook client, against the real backtest servicer and the
tests' fake price service (real Binance klines from ../shared), each on a real gRPC server.

The client's calls block, as in a notebook; they run in a thread beside the servers' loop.
"""

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import grpc
import pandas as pd
import pytest
import pytest_asyncio

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import market_pb2, price_service_pb2_grpc
from finplat.backtest.adapters.history import PriceServiceBars
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.service.runs import Limits
from finplat.client import (
    GridAxis,
    OperationError,
    Platform,
    PortfolioRun,
    SweepProgress,
    SweepRun,
    WalkForwardProgress,
    WalkForwardRun,
)
from finplat.client.operations import parameter_range
from finplat.core.grpc_server import ServiceBinding, start_server
from tests.backtest_server import backtest_server
from tests.paths import market_data_dir
from tests.unit.backtest.api_harness import FakeStats
from tests.unit.backtest.fake_price_service import FakePriceService, btc_candles, eth_candles

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def day(data_dir: Path) -> list[market_pb2.Candle]:
    return btc_candles(data_dir, date(2024, 11, 1), date(2024, 11, 1))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def addresses(
    day: list[market_pb2.Candle], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, str]]:
    eth = eth_candles(market_data_dir(), day[0].open_time, day[-1].open_time + 60_000)
    prices = FakePriceService({"BTCUSDT": day, "ETHUSDT": eth})
    price_binding = ServiceBinding(
        "finance.market.v1.PriceService",
        lambda s: price_service_pb2_grpc.add_PriceServiceServicer_to_server(prices, s),
    )
    price_server = await start_server("127.0.0.1:0", [price_binding])
    price_address = f"127.0.0.1:{price_server.port}"
    path = tmp_path_factory.mktemp("client") / "results.sqlite3"
    store = await ResultStore.open(path)
    async with grpc.aio.insecure_channel(price_address) as channel:
        bars = PriceServiceBars(price_service_pb2_grpc.PriceServiceStub(channel))
        async with backtest_server(FakeStats(), bars, store, path, Limits()) as served:
            yield price_address, served.address
    await price_server.stop(0)
    await store.close()


async def test_candles_of_a_range_and_the_last_ones_as_a_frame(
    addresses: tuple[str, str], day: list[market_pb2.Candle]
) -> None:
    def fetch() -> tuple[pd.DataFrame, pd.DataFrame]:
        with Platform(*addresses) as platform:
            hour = platform.candles("BTCUSDT", "1m", start="2024-11-01", end="2024-11-01T01:00")
            last = platform.candles("BTCUSDT", "1m", last=5)
        return hour, last

    hour, last = await asyncio.to_thread(fetch)

    assert len(hour) == 60
    assert hour.index[0] == pd.Timestamp("2024-11-01T00:00", tz="UTC")
    assert hour["close"].iloc[0] == float(day[0].close)
    assert hour["trade_count"].iloc[-1] == day[59].trade_count
    assert list(last.index) == list(
        pd.to_datetime([c.open_time for c in day[-5:]], unit="ms", utc=True)
    )
    assert last["high"].tolist() == [float(c.high) for c in day[-5:]]


async def test_a_backtest_comes_back_with_its_metrics_trades_and_equity(
    addresses: tuple[str, str],
) -> None:
    def run() -> tuple[object, list[str]]:
        with Platform(*addresses) as platform:
            strategies = platform.strategies()
            result = platform.backtest(
                "sma_crossover", "BTCUSDT", "1m", "2024-11-01", "2024-11-02",
                {"fast": 10, "slow": 30}, fee_bps=10,
            )  # fmt: skip
        return result, list(strategies.index)

    result, names = await asyncio.to_thread(run)
    async with grpc.aio.insecure_channel(addresses[1]) as channel:
        stored = await backtest_service_pb2_grpc.BacktestServiceStub(channel).GetBacktest(
            backtest_service_pb2.GetBacktestRequest(id=result.id)  # type: ignore[attr-defined]
        )

    assert "sma_crossover" in names
    message = stored.backtest
    assert result.message == message  # type: ignore[attr-defined]
    assert result.metrics["total_return"] == message.metrics.total_return  # type: ignore[attr-defined]
    assert len(result.trades) == message.metrics.trade_count  # type: ignore[attr-defined]
    trades = result.trades  # type: ignore[attr-defined]
    assert trades["pnl"].tolist() == [t.pnl for t in message.trades]
    assert set(trades["side"]) <= {"SIDE_LONG", "SIDE_SHORT"}
    equity = result.equity  # type: ignore[attr-defined]
    assert equity["equity"].tolist() == [p.equity for p in message.equity_curve]


async def test_a_portfolio_comes_back_with_each_symbols_contribution(
    addresses: tuple[str, str],
) -> None:
    request = backtest_service_pb2.RunPortfolioRequest(
        strategy="sma_crossover", parameters={"fast": 10, "slow": 30},
        symbols=["BTCUSDT", "ETHUSDT"], interval="1m",
        config=backtest_pb2.BacktestConfig(fee_bps=10),
    )  # fmt: skip
    request.start_time.FromMilliseconds(1_730_419_200_000)
    request.end_time.FromMilliseconds(1_730_419_200_000 + 86_400_000)

    def run() -> PortfolioRun:
        with Platform(*addresses) as platform:
            return platform.portfolio(
                "sma_crossover", ["BTCUSDT", "ETHUSDT"], "1m", "2024-11-01", "2024-11-02",
                {"fast": 10, "slow": 30}, fee_bps=10,
            )  # fmt: skip

    result = await asyncio.to_thread(run)
    async with grpc.aio.insecure_channel(addresses[1]) as channel:
        direct = await backtest_service_pb2_grpc.BacktestServiceStub(channel).RunPortfolio(request)

    message = direct.portfolio
    assert result.message == message
    assert list(result.contributions.index) == ["BTCUSDT", "ETHUSDT"]
    assert result.contributions["pnl"].tolist() == [c.pnl for c in message.contributions]
    assert result.contributions["fills"].tolist() == [c.fill_count for c in message.contributions]
    assert result.metrics["final_equity"] == message.metrics.final_equity
    assert result.equity["equity"].tolist() == [p.equity for p in message.equity_curve]


async def test_a_range_and_last_together_are_refused(addresses: tuple[str, str]) -> None:
    with Platform(*addresses) as platform, pytest.raises(ValueError, match="give start and end"):
        platform.candles("BTCUSDT", "1m", start="2024-11-01", end="2024-11-02", last=5)


def _run_sweep_request(grid: dict[str, tuple[float, float, float]]) -> Any:
    """RunSweep's request for what `_start_small_sweep` starts."""
    request = backtest_service_pb2.RunSweepRequest(
        strategy="sma_crossover",
        grid={name: backtest_pb2.ParameterRange(start=a, stop=b, step=c)
              for name, (a, b, c) in grid.items()},
        data=backtest_pb2.DataRange(symbol="BTCUSDT", interval="1m"),
        config=backtest_pb2.BacktestConfig(fee_bps=10), rank_by="sharpe",
    )  # fmt: skip
    request.data.start_time.FromDatetime(datetime(2024, 11, 1))
    request.data.end_time.FromDatetime(datetime(2024, 11, 2))
    return request


async def _exported_run_sweep(address: str, request: Any) -> tuple[Any, pd.DataFrame]:
    """The same sweep run at once by RunSweep, and its table as ExportSweep serves it."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
        sweep = (await stub.RunSweep(request)).sweep
        exported = await stub.ExportSweep(backtest_service_pb2.ExportSweepRequest(id=sweep.id))
    return sweep, pd.read_parquet(io.BytesIO(exported.file.data))


async def test_a_started_sweep_is_followed_to_its_end_and_waited_for_as_a_frame(
    addresses: tuple[str, str],
) -> None:
    def sweep() -> tuple[str, list[SweepProgress], SweepProgress, SweepRun]:
        with Platform(*addresses) as platform:
            # fast 1..6 (a range: its values) x slow 2..8 (a tuple: stop included).
            operation = platform.start_sweep(
                "sma_crossover", "BTCUSDT", "1m", "2024-11-01", "2024-11-02",
                {"fast": range(1, 7), "slow": (2, 8, 1)}, fee_bps=10,
            )  # fmt: skip
            seen = list(operation.follow())
            attached = platform.sweep_operation(operation.name)
            return operation.name, seen, attached.progress(), attached.wait(timeout=30)

    name, seen, final, run = await asyncio.to_thread(sweep)
    direct, exported = await _exported_run_sweep(
        addresses[1], _run_sweep_request({"fast": (1, 6, 1), "slow": (2, 8, 1)})
    )

    assert name == f"operations/{run.id}"
    counts = [progress.done for progress in seen]
    assert counts == sorted(counts)
    assert [p.finished for p in seen] == [False] * (len(seen) - 1) + [True]
    # 6 x 7 pairs, less the 15 with fast >= slow.
    assert (final.done, final.total, final.finished) == (27, 27, True)
    assert seen[-1] == final
    assert final.best is not None
    assert final.best.parameters == dict(direct.results[0].parameters)
    assert final.best.metrics["sharpe"] == direct.results[0].metrics.sharpe
    assert final.elapsed > timedelta(0)
    assert (final.strategy, final.rank_by, run.rank_by) == ("sma_crossover", "sharpe", "sharpe")
    assert list(run.results.columns[:2]) == ["fast", "slow"]
    pd.testing.assert_frame_equal(run.results, exported)
    assert list(run.message.results) == list(direct.results)


async def test_a_cancelled_sweep_raises_cancelled_when_waited_for(
    addresses: tuple[str, str],
) -> None:
    def cancel() -> tuple[SweepProgress, OperationError, SweepProgress]:
        with Platform(*addresses) as platform:
            operation = platform.start_sweep(
                "sma_crossover", "BTCUSDT", "1m", "2024-11-01", "2024-11-02",
                {"fast": (1, 50, 1), "slow": (2, 200, 1)},
            )  # fmt: skip
            # Stopping to follow leaves the operation running.
            running = next(p for p in operation.follow() if p.done > 0)
            with pytest.raises(TimeoutError):
                operation.wait(timeout=0.01)
            operation.cancel()
            with pytest.raises(OperationError) as failed:
                operation.wait(timeout=10)
            return running, failed.value, operation.progress()

    running, failed, ended = await asyncio.to_thread(cancel)

    assert not running.finished
    assert failed.code == grpc.StatusCode.CANCELLED
    assert failed.message == "cancelled by the client"
    assert str(failed) == f"{running.name} ended CANCELLED: cancelled by the client"
    assert ended.finished
    assert 0 < ended.done < ended.total


async def test_a_bad_sweep_is_refused_when_started_and_an_unknown_one_when_attached(
    addresses: tuple[str, str],
) -> None:
    def start(grid: dict[str, Any], strategy: str = "sma_crossover") -> grpc.StatusCode:
        with Platform(*addresses) as platform, pytest.raises(grpc.RpcError) as caught:
            platform.start_sweep(strategy, "BTCUSDT", "1m", "2024-11-01", "2024-11-02", grid)
        # A blocking call's error is also its grpc.Call, which the stubs do not say.
        return cast(grpc.Call, caught.value).code()

    def attach(name: str) -> grpc.StatusCode:
        with Platform(*addresses) as platform, pytest.raises(grpc.RpcError) as caught:
            platform.sweep_operation(name)
        return cast(grpc.Call, caught.value).code()

    backwards = await asyncio.to_thread(start, {"fast": (10, 5, 1)})
    unknown = await asyncio.to_thread(start, {"fast": 5}, "moon")
    never_started = await asyncio.to_thread(attach, "operations/nope")

    assert backwards == grpc.StatusCode.INVALID_ARGUMENT
    assert unknown == grpc.StatusCode.NOT_FOUND
    assert never_started == grpc.StatusCode.NOT_FOUND
    wrong: Any = {"fast": [5, 10, 20]}  # a list could mean values or (start, stop, step)
    with Platform(*addresses) as platform, pytest.raises(TypeError, match="grid axis"):
        platform.start_sweep("sma_crossover", "BTCUSDT", "1m", "2024-11-01", "2024-11-02", wrong)


async def test_grid_axes_become_the_services_parameter_ranges() -> None:
    def axis(value: GridAxis) -> tuple[float, float, float]:
        got = parameter_range(value)
        return got.start, got.stop, got.step

    assert axis(range(5, 21, 5)) == (5, 20, 5)
    assert axis(range(20, 4, -5)) == (5, 20, 5)  # the same values, ascending
    assert axis((0.5, 2.0, 0.5)) == (0.5, 2.0, 0.5)
    assert axis(7) == (7, 7, 1)
    with pytest.raises(ValueError, match="no values"):
        parameter_range(range(3, 3))


async def test_a_walk_forward_is_followed_and_its_folds_come_as_a_frame(
    addresses: tuple[str, str],
) -> None:
    def walk() -> tuple[list[WalkForwardProgress], WalkForwardRun]:
        with Platform(*addresses) as platform:
            operation = platform.start_walk_forward(
                "sma_crossover", "BTCUSDT", "1m", "2024-11-01", "2024-11-02",
                {"fast": (5, 15, 5), "slow": (20, 60, 20)}, folds=3, in_sample_ratio=2,
                anchored=True, fee_bps=10,
            )  # fmt: skip
            seen = list(operation.follow())
            return seen, operation.wait(timeout=60)

    seen, result = await asyncio.to_thread(walk)
    async with grpc.aio.insecure_channel(addresses[1]) as channel:
        stored = await backtest_service_pb2_grpc.BacktestServiceStub(channel).GetWalkForward(
            backtest_service_pb2.GetWalkForwardRequest(id=result.id)
        )

    message = stored.walk_forward
    assert result.message == message
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert (seen[-1].done, seen[-1].total, seen[-1].finished) == (3, 3, True)
    folds = result.folds
    assert folds["fold"].tolist() == [0, 1, 2]
    assert folds["fast"].tolist() == [f.parameters["fast"] for f in message.folds]
    assert folds["out_of_sample.sharpe"].tolist() == [
        f.out_of_sample_metrics.sharpe for f in message.folds
    ]
    assert result.out_of_sample_metrics["final_equity"] == (
        message.out_of_sample_metrics.final_equity
    )
    assert result.out_of_sample_equity["equity"].tolist() == [
        p.equity for p in message.out_of_sample_equity
    ]
    assert result.whole_period_best.parameters == dict(message.whole_period_best.parameters)

"""RunBacktest over candles served by the real price service (fed by the replay server, stored
in the real InfluxDB) returns what the engine returns on the same klines read from Binance's
file directly."""

import csv
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import numpy as np
import pytest

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import price_service_pb2_grpc
from finplat.backtest.adapters.history import PriceServiceBars
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig, PositionMode, run_strategy
from finplat.backtest.domain.stats import StatsSnapshot
from finplat.backtest.service.consumer import PartitionLag
from finplat.backtest.service.runs import Limits
from finplat.core.connections import InfluxSettings, KafkaSettings
from tests.backtest_server import backtest_server
from tests.integration.conftest import StartReplay
from tests.integration.price.harness import price_service, timestamp
from tests.support import eventually_async

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

START = int(datetime(2024, 10, 1, 20, tzinfo=UTC).timestamp() * 1000)
END = int(datetime(2024, 10, 2, tzinfo=UTC).timestamp() * 1000)


class FakeStats:
    """No live statistics: this test is about backtests."""

    def snapshot(self) -> tuple[StatsSnapshot, tuple[PartitionLag, ...]]:
        return StatsSnapshot(0, (), 0, 0, 0, 0.0), ()


def _file_bars(path: Path) -> Bars:
    with gzip.open(path, "rt") as handle:
        rows = [r for r in csv.reader(handle) if START <= int(r[0]) < END]
    columns = list(zip(*rows, strict=True))
    return Bars(
        open_time_ms=np.array(columns[0], dtype=np.int64),
        open=np.array(columns[1], dtype=np.float64),
        high=np.array(columns[2], dtype=np.float64),
        low=np.array(columns[3], dtype=np.float64),
        close=np.array(columns[4], dtype=np.float64),
        volume=np.array(columns[5], dtype=np.float64),
    )


@asynccontextmanager
async def _backtest_service(
    price_port: int, store: ResultStore, path: Path
) -> AsyncIterator["backtest_service_pb2_grpc.BacktestServiceAsyncStub"]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{price_port}") as price_channel:
        bars = PriceServiceBars(price_service_pb2_grpc.PriceServiceStub(price_channel), chunk=100)
        limits = Limits(max_bars=100_000)
        async with (
            backtest_server(FakeStats(), bars, store, path, limits) as served,
            grpc.aio.insecure_channel(served.address) as channel,
        ):
            yield backtest_service_pb2_grpc.BacktestServiceStub(channel)


async def test_run_backtest_over_the_price_service_equals_the_engine(
    start_replay: StartReplay,
    kafka_settings: KafkaSettings,
    influx_settings: InfluxSettings,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    expected_bars = _file_bars(data_dir / "klines/spot/BTCUSDT/1m/BTCUSDT-1m-2024-10-01.csv.gz")
    direct = run_strategy(
        expected_bars,
        "sma_crossover",
        {"fast": 5, "slow": 20},
        EngineConfig(fee_bps=10, mode=PositionMode.LONG_ONLY),
    )
    replay = await start_replay(kline_last_day=date(2024, 10, 1), start_ms=START, speed=2400.0)
    feed = {"symbols": ("BTCUSDT",), "stream_kinds": ("kline_1m",)}
    request = backtest_service_pb2.RunBacktestRequest(
        strategy="sma_crossover",
        parameters={"fast": 5, "slow": 20},
        data=backtest_pb2.DataRange(
            symbol="BTCUSDT", interval="1m", start_time=timestamp(START), end_time=timestamp(END)
        ),
        config=backtest_pb2.BacktestConfig(fee_bps=10),
    )
    path = tmp_path / "results.sqlite3"
    store = await ResultStore.open(path)

    async with price_service(replay, kafka_settings, influx_settings, feed) as running:

        async def all_stored() -> bool:
            candles = await running.candles("BTCUSDT", "1m", START, END)
            return len(candles) == len(expected_bars)

        await eventually_async(all_stored, 60, 0.2)
        async with _backtest_service(running.service.grpc_port, store, path) as stub:
            run = (await stub.RunBacktest(request)).backtest
    await store.close()

    metrics, expected = run.metrics, direct.metrics
    assert run.bar_count == len(expected_bars) == 240
    assert metrics.trade_count == expected.n_trades > 0
    assert (metrics.total_return, metrics.sharpe, metrics.max_drawdown) == (
        expected.total_return,
        expected.sharpe,
        expected.max_drawdown,
    )
    assert metrics.final_equity == direct.equity[-1]
    assert [t.entry_price for t in run.trades] == list(direct.trades.entry_price)
    assert [t.exit_price for t in run.trades] == list(direct.trades.exit_price)

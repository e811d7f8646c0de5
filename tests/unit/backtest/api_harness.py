"""The backtest service's API on a real in-process gRPC server, bars from a fake PriceService
over gRPC serving three real days (2024-11-01..03) of BTCUSDT and ETHUSDT 1m: what the API
tests share."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2_grpc  # type: ignore[import-untyped]

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import price_service_pb2_grpc
from finplat.backtest.adapters.history import PriceServiceBars
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.adapters.sweep_executor import SweepExecutor
from finplat.backtest.domain.stats import StatsSnapshot, SymbolSnapshot
from finplat.backtest.service.api import BacktestServicer
from finplat.backtest.service.consumer import PartitionLag
from finplat.backtest.service.operations import Operations
from finplat.backtest.service.runs import Limits
from finplat.core.grpc_server import ServiceBinding, start_server
from tests.backtest_server import backtest_server
from tests.paths import market_data_dir
from tests.unit.backtest.fake_price_service import FakePriceService, btc_candles, eth_candles

NOV_1_MS = 1_730_419_200_000  # 2024-11-01T00:00:00Z
DAY_MS = 86_400_000


class FakeStats:
    """A fixed statistics snapshot."""

    def snapshot(self) -> tuple[StatsSnapshot, tuple[PartitionLag, ...]]:
        symbol = SymbolSnapshot("BTCUSDT", 3, 1000, 2500, "101.5", "99.00", "101.5", "0.75", 0.05)
        return (
            StatsSnapshot(3, (symbol,), decode_errors=1, dead_lettered=1, duplicates=2,
                          uptime_s=90.5),
            (PartitionLag("price-updates", 0, next_offset=7, end_offset=10),),
        )  # fmt: skip


@dataclass
class Harness:
    stub: "backtest_service_pb2_grpc.BacktestServiceAsyncStub"
    prices: FakePriceService
    servicer: BacktestServicer
    operations: Any  # google.longrunning.Operations stub (untyped)
    sweeps: Operations


@asynccontextmanager
async def serve_harness(
    tmp_path: Path, limits: Limits, executor: SweepExecutor | None = None
) -> AsyncIterator[Harness]:
    """The service on ``tmp_path``'s results file: twice on one path is a restart. Operations
    compute on ``executor`` (threads by default)."""
    candles = btc_candles(market_data_dir(), date(2024, 11, 1), date(2024, 11, 3))
    eth = eth_candles(market_data_dir(), NOV_1_MS, NOV_1_MS + 3 * DAY_MS)
    prices = FakePriceService({"BTCUSDT": candles, "ETHUSDT": eth})
    price_binding = ServiceBinding(
        "finance.market.v1.PriceService",
        lambda s: price_service_pb2_grpc.add_PriceServiceServicer_to_server(prices, s),
    )
    price_server = await start_server("127.0.0.1:0", [price_binding])
    store = await ResultStore.open(tmp_path / "results.sqlite3")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{price_server.port}") as price_channel:
        bars = PriceServiceBars(price_service_pb2_grpc.PriceServiceStub(price_channel), chunk=1000)
        path = tmp_path / "results.sqlite3"
        async with (
            backtest_server(FakeStats(), bars, store, path, limits, executor) as served,
            grpc.aio.insecure_channel(served.address) as channel,
        ):
            stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
            operations = operations_pb2_grpc.OperationsStub(channel)
            yield Harness(stub, prices, served.servicer, operations, served.operations)
    await price_server.stop(0)
    await store.close()


def run_request(
    strategy: str = "sma_crossover",
    parameters: dict[str, float] | None = None,
    symbol: str = "BTCUSDT",
    start_ms: int = NOV_1_MS,
    end_ms: int = NOV_1_MS + 3 * DAY_MS,
) -> backtest_service_pb2.RunBacktestRequest:
    request = backtest_service_pb2.RunBacktestRequest(
        strategy=strategy,
        parameters={"fast": 10, "slow": 30} if parameters is None else parameters,
        data=backtest_pb2.DataRange(symbol=symbol, interval="1m"),
        config=backtest_pb2.BacktestConfig(fee_bps=10),
    )
    request.data.start_time.FromMilliseconds(start_ms)
    request.data.end_time.FromMilliseconds(end_ms)
    return request


async def rpc_error(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""

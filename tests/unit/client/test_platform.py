"""`finplat.client.Platform`, the notebook client, against the real backtest servicer and the
tests' fake price service (real Binance klines from ../shared), each on a real gRPC server.

The client's calls block, as in a notebook; they run in a thread beside the servers' loop.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import grpc
import pandas as pd
import pytest
import pytest_asyncio

from finance.backtest.v1 import backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import market_pb2, price_service_pb2_grpc
from finplat.backtest.adapters.history import PriceServiceBars
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.service.runs import Limits
from finplat.client import Platform
from finplat.core.grpc_server import ServiceBinding, start_server
from tests.backtest_server import backtest_server
from tests.unit.backtest.api_harness import FakeStats
from tests.unit.backtest.fake_price_service import FakePriceService, btc_candles

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def day(data_dir: Path) -> list[market_pb2.Candle]:
    return btc_candles(data_dir, date(2024, 11, 1), date(2024, 11, 1))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def addresses(
    day: list[market_pb2.Candle], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, str]]:
    prices = FakePriceService({"BTCUSDT": day})
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


async def test_a_range_and_last_together_are_refused(addresses: tuple[str, str]) -> None:
    with Platform(*addresses) as platform, pytest.raises(ValueError, match="give start and end"):
        platform.candles("BTCUSDT", "1m", start="2024-11-01", end="2024-11-02", last=5)

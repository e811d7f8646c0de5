"""RunPortfolio on the real in-process service: strategies' weights over BTCUSDT and ETHUSDT,
equal to the portfolio engine run on the same bars, and its refusals."""

from datetime import date

import grpc
import numpy as np
import pytest

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.kline_files import load_bars
from finplat.backtest.adapters.strategy_loader import load_user_strategies
from finplat.backtest.domain.engine import PositionMode
from finplat.backtest.domain.portfolio import Panel, PortfolioConfig, run_portfolio
from finplat.backtest.domain.strategies import get_strategy
from finplat.binance.archive import daily_kline_paths, ohlcv_files
from tests.paths import REPO_ROOT, market_data_dir
from tests.unit.backtest.api_harness import DAY_MS, NOV_1_MS, Harness, rpc_error

pytestmark = pytest.mark.asyncio


def _day_panel() -> Panel:
    """BTCUSDT and ETHUSDT 1m of 2024-11-01, read from the files the fake service serves."""
    btc = load_bars(daily_kline_paths(market_data_dir(), "BTCUSDT", "1m", date(2024, 11, 1),
                                      date(2024, 11, 1)))  # fmt: skip
    eth = load_bars(ohlcv_files(market_data_dir(), "ETHUSDT"))
    start = int(np.searchsorted(eth.open_time_ms, NOV_1_MS))
    return Panel.from_bars({"BTCUSDT": btc, "ETHUSDT": eth.slice(start, start + 1440)})


def _request(strategy: str, **parameters: float) -> backtest_service_pb2.RunPortfolioRequest:
    request = backtest_service_pb2.RunPortfolioRequest(
        strategy=strategy,
        parameters=parameters,
        symbols=["BTCUSDT", "ETHUSDT"],
        interval="1m",
        config=backtest_pb2.BacktestConfig(
            fee_bps=10, slippage_bps=5, mode=backtest_pb2.POSITION_MODE_LONG_SHORT
        ),
    )
    request.start_time.FromMilliseconds(NOV_1_MS)
    request.end_time.FromMilliseconds(NOV_1_MS + DAY_MS)
    return request


async def test_a_one_symbol_strategy_gives_each_symbol_half(service: Harness) -> None:
    panel = _day_panel()
    spec = get_strategy("sma_crossover")
    params = spec.parse({"fast": 10, "slow": 30})
    halves = np.column_stack([spec.signal(panel.bars(k), params) for k in (0, 1)]) / 2.0
    direct = run_portfolio(
        panel, halves, PortfolioConfig(10_000.0, 10.0, 5.0, PositionMode.LONG_SHORT)
    )

    answer = await service.stub.RunPortfolio(_request("sma_crossover", fast=10, slow=30))

    portfolio = answer.portfolio
    assert portfolio.bar_count == 1440
    assert list(portfolio.symbols) == ["BTCUSDT", "ETHUSDT"]
    assert portfolio.metrics.final_equity == direct.metrics.final_equity
    assert portfolio.metrics.trade_count == len(direct.fills) > 100
    assert [(c.symbol, c.pnl, c.fill_count) for c in portfolio.contributions] == [
        (c.symbol, c.pnl, c.n_fills) for c in direct.contributions
    ]
    total_pnl = sum(c.pnl for c in portfolio.contributions)
    assert total_pnl == pytest.approx(portfolio.metrics.final_equity - 10_000.0, rel=1e-9)


@pytest.mark.usefixtures("isolated_registry")
async def test_the_example_portfolio_strategy_rotates_into_one_symbol(service: Harness) -> None:
    load_user_strategies([REPO_ROOT / "examples" / "strategies"])

    portfolio = (
        await service.stub.RunPortfolio(_request("momentum_rotation", lookback=60))
    ).portfolio
    single = await rpc_error(
        service.stub.RunBacktest(
            backtest_service_pb2.RunBacktestRequest(
                strategy="momentum_rotation",
                data=backtest_pb2.DataRange(
                    symbol="BTCUSDT", interval="1m",
                    start_time=_request("x").start_time, end_time=_request("x").end_time,
                ),
            )
        )
    )  # fmt: skip

    # Held in full by one symbol at a time: every switch sells one and buys the other.
    assert portfolio.metrics.trade_count > 2
    assert sum(c.fill_count for c in portfolio.contributions) == portfolio.metrics.trade_count
    assert single == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "strategy 'momentum_rotation' is a portfolio strategy: it runs on several symbols "
        "(RunPortfolio)",
    )


async def test_bad_portfolios_are_refused(service: Harness) -> None:
    one = _request("sma_crossover")
    del one.symbols[1:]
    twice = _request("sma_crossover")
    twice.symbols[1] = "btcusdt"
    stopped = _request("sma_crossover")
    stopped.config.stop_loss = 0.05
    unknown = _request("sma_crossover")
    unknown.symbols[1] = "DOGEUSDT"

    assert await rpc_error(service.stub.RunPortfolio(one)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "symbols: give 2 to 50, got 1",
    )  # fmt: skip
    assert await rpc_error(service.stub.RunPortfolio(twice)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "symbols repeat: ['BTCUSDT', 'BTCUSDT']",
    )  # fmt: skip
    assert (await rpc_error(service.stub.RunPortfolio(stopped)))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    missing = await rpc_error(service.stub.RunPortfolio(unknown))
    assert missing[0] == grpc.StatusCode.FAILED_PRECONDITION, missing
    assert "DOGEUSDT" in missing[1]

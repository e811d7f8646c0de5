"""Metrics against values worked out by hand (and Python's statistics module)."""

import math
import statistics

import numpy as np
import pytest

from finplat.backtest.domain.metrics import bars_per_year, compute_metrics
from finplat.backtest.domain.trades import TradeLog


def trade_log(pnl: list[float], ret: list[float]) -> TradeLog:
    n = len(pnl)
    ints = np.zeros(n, dtype=np.int64)
    floats = np.ones(n)
    return TradeLog(
        ints, ints, ints, ints, np.ones(n, dtype=np.int8), floats, floats, floats,
        np.array(pnl), np.array(ret), floats, np.zeros(n, dtype=np.int8),
    )  # fmt: skip


def test_metrics_by_hand() -> None:
    equity = np.array([110.0, 99.0, 121.0, 121.0])
    trades = trade_log([10.0, -5.0, 20.0], [0.1, -0.05, 0.2])
    m = compute_metrics(equity, trades, capital=100.0, exposed_bars=3, periods_per_year=4.0)
    returns = [0.1, -0.1, 121 / 99 - 1, 0.0]
    mean, std = statistics.fmean(returns), statistics.stdev(returns)
    downside = math.sqrt(0.1**2 / 4)
    assert m.total_return == pytest.approx(0.21)
    assert m.cagr == pytest.approx(0.21)  # exactly one year of 4 bars
    assert m.annual_volatility == pytest.approx(std * 2)
    assert m.sharpe == pytest.approx(mean / std * 2)
    assert m.sortino == pytest.approx(mean / downside * 2)
    assert m.max_drawdown == pytest.approx(0.1)  # 110 -> 99
    assert m.max_drawdown_duration_bars == 1
    assert m.calmar == pytest.approx(0.21 / 0.1)
    assert m.win_rate == pytest.approx(2 / 3)
    assert m.profit_factor == pytest.approx(30 / 5)
    assert m.n_trades == 3
    assert m.avg_trade_pnl == pytest.approx(25 / 3)
    assert m.avg_trade_return == pytest.approx(0.25 / 3)
    assert m.exposure == pytest.approx(3 / 4)
    assert m.final_equity == 121.0


def test_drawdown_duration_counts_the_longest_underwater_run() -> None:
    # Peak 100 (capital) -> under for 2 bars -> new peak 105 -> under for 3 bars to the end.
    equity = np.array([90.0, 95.0, 105.0, 100.0, 80.0, 104.0])
    m = compute_metrics(equity, trade_log([], []), 100.0, 0, 365.0)
    assert m.max_drawdown_duration_bars == 3
    assert m.max_drawdown == pytest.approx(1 - 80 / 105)
    assert math.isnan(m.profit_factor)
    assert math.isnan(m.avg_trade_pnl)


def test_profit_factor_without_losses_is_infinite() -> None:
    m = compute_metrics(np.array([100.0, 110.0]), trade_log([10.0], [0.1]), 100.0, 1, 365.0)
    assert m.profit_factor == math.inf


def test_bars_per_year_uses_a_365_day_year() -> None:
    minute = np.arange(10, dtype=np.int64) * 60_000
    assert bars_per_year(minute) == 525_600
    assert bars_per_year(minute * 60) == 8_760
    assert math.isnan(bars_per_year(minute[:1]))

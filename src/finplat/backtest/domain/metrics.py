"""Performance metrics from an equity curve and a trade log (365-day crypto year)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain._jit import njit
from finplat.backtest.domain.trades import TradeLog

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MS_PER_YEAR = 365 * 86_400_000


@dataclass(frozen=True, slots=True)
class Metrics:
    """Summary statistics. Ratios use per-bar simple returns, zero risk-free rate.

    ``max_drawdown`` is a positive fraction of the running peak; its duration is the longest
    run of bars below a previous peak. Undefined ratios (no variance, no trades) are NaN.
    """

    total_return: float
    cagr: float
    annual_volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration_bars: int
    win_rate: float
    profit_factor: float
    n_trades: int
    avg_trade_pnl: float
    avg_trade_return: float
    exposure: float
    final_equity: float
    bars_per_year: float


def bars_per_year(open_time_ms: IntArray) -> float:
    """Bars in a 365-day year at the median bar spacing."""
    if open_time_ms.shape[0] < 2:
        return math.nan
    return MS_PER_YEAR / float(np.median(np.diff(open_time_ms)))


@njit
def equity_stats(equity: FloatArray, capital: float) -> tuple[float, float, float, float, int]:
    """(mean return, sample std, downside deviation, max drawdown, longest underwater run)."""
    n = equity.shape[0]
    prev = capital
    peak = capital
    mean = 0.0
    m2 = 0.0
    down = 0.0
    max_dd = 0.0
    run = 0
    longest = 0
    for i in range(n):
        e = equity[i]
        r = e / prev - 1.0 if prev > 0.0 else 0.0
        # Welford: stable for tiny per-bar returns over millions of bars.
        delta = r - mean
        mean += delta / (i + 1)
        m2 += delta * (r - mean)
        if r < 0.0:
            down += r * r
        prev = e
        if e >= peak:
            peak = e
            run = 0
        else:
            run += 1
            longest = max(longest, run)
            dd = 1.0 - e / peak
            max_dd = max(max_dd, dd)
    std = math.sqrt(m2 / (n - 1)) if n > 1 else math.nan
    downside = math.sqrt(down / n) if n > 0 else math.nan
    return mean, std, downside, max_dd, longest


def _cagr(growth: float, years: float) -> float:
    if not years > 0.0:
        return math.nan
    if growth <= 0.0:
        return -1.0
    try:
        return math.exp(math.log(growth) / years) - 1.0
    except OverflowError:
        # Compounding a short, profitable run to a year overflows float64: report +inf.
        return math.inf


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0.0 and math.isfinite(den) else math.nan


def compute_metrics(
    equity: FloatArray,
    trades: TradeLog,
    capital: float,
    exposed_bars: int,
    periods_per_year: float,
) -> Metrics:
    """Metrics for an equity curve sampled at each bar's close, starting from ``capital``."""
    n = int(equity.shape[0])
    mean, std, downside, max_dd, longest = equity_stats(equity, capital)
    final = float(equity[-1]) if n else capital
    growth = final / capital
    years = n / periods_per_year if n else math.nan
    cagr = _cagr(growth, years)
    root = math.sqrt(periods_per_year)
    pnl = trades.pnl
    n_trades = len(trades)
    gains = float(pnl[pnl > 0.0].sum())
    losses = float(-pnl[pnl < 0.0].sum())
    if n_trades == 0:
        profit_factor = math.nan
    elif losses > 0.0:
        profit_factor = gains / losses
    else:
        profit_factor = math.inf if gains > 0.0 else math.nan
    return Metrics(
        total_return=growth - 1.0,
        cagr=cagr,
        annual_volatility=std * root,
        sharpe=_ratio(mean, std) * root,
        sortino=_ratio(mean, downside) * root,
        calmar=_ratio(cagr, max_dd),
        max_drawdown=max_dd,
        max_drawdown_duration_bars=int(longest),
        win_rate=float(np.count_nonzero(pnl > 0.0)) / n_trades if n_trades else math.nan,
        profit_factor=profit_factor,
        n_trades=n_trades,
        avg_trade_pnl=float(pnl.mean()) if n_trades else math.nan,
        avg_trade_return=float(trades.return_.mean()) if n_trades else math.nan,
        exposure=exposed_bars / n if n else math.nan,
        final_equity=final,
        bars_per_year=periods_per_year,
    )

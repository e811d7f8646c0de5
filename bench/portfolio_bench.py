"""Benchmark: a 2-asset portfolio (BTCUSDT + ETHUSDT, 1m) on 1,000,000 bars, ours vs vectorbt.

Both run the same targets with one shared cash balance: each symbol +1/2 of portfolio value
while its SMA(10) > SMA(30), -1/2 while below, decided at a bar's close and filled at the next
open. vectorbt runs ``Portfolio.from_orders(size_type='targetpercent', cash_sharing=True,
group_by=True, call_seq='auto', price=open)`` with sizes shifted to their fill row and NaN
where the weight is unchanged (how that maps onto our conventions:
tests/unit/backtest/test_portfolio_vs_vectorbt.py). Run:

    PYTHONPATH=src .venv/bin/python bench/portfolio_bench.py

Timings are medians after warm-up runs on a 5,000-bar slice (numba compilation excluded).
Input arrays are built before the clock starts for both tools; ours includes its weight
validation, metrics and per-symbol contributions, vectorbt's row "+ value()" its equity curve.

Costs default to 1 bps fees and 0.5 bps slippage, from 10,000: SMA(10/30) on 1m bars fills
~78,000 orders, and with whipsaws and costs the book ends near 0.45. At the tests' 10 + 5 bps
it would shrink ~1e-50-fold; vectorbt's ``value()``, which re-adds every order's cash flow to
the initial cash, is then rounding noise (1e-16 x capital, far above the equity) and the
final equities cannot be compared. Timings hardly depend on the costs (--fee-bps,
--slippage-bps).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import vectorbt as vbt  # type: ignore[import-untyped]

from finplat.backtest.adapters.kline_files import load_bars
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import BPS
from finplat.backtest.domain.portfolio import Panel, PortfolioConfig, run_portfolio
from finplat.binance.archive import daily_kline_paths, ohlcv_files
from finplat.replay.settings import ReplaySettings

FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")

FAST, SLOW = 10, 30
WARM_UP_BARS = 5_000
AGREEMENT_RTOL = 1e-8


def data_dir() -> Path:
    return ReplaySettings().data_dir  # FINPLAT_DATA_DIR, as the replay reads it


def real_pair() -> tuple[Bars, Bars]:
    """BTCUSDT and ETHUSDT 1m on the same minutes: all of the ETHUSDT file (2024-10-01 03:00 ..
    2024-11-04 20:19), BTCUSDT cut to it."""
    eth = load_bars(ohlcv_files(data_dir(), "ETHUSDT"))
    btc_paths = daily_kline_paths(data_dir(), "BTCUSDT", "1m", date(2024, 10, 1), date(2024, 11, 4))
    btc = load_bars(btc_paths)
    start, stop = np.searchsorted(btc.open_time_ms, eth.open_time_ms[[0, -1]])
    return btc.slice(int(start), int(stop) + 1), eth


def tiled(real: Bars, n: int) -> Bars:
    """``real`` appended to itself with times shifted until it has ``n`` bars."""
    span = int(real.open_time_ms[-1] - real.open_time_ms[0]) + 60_000
    copies = -(-n // len(real))
    return Bars.concat([real.shift_time(i * span) for i in range(copies)]).slice(0, n)


def million_bar_panel(n: int) -> tuple[Panel, str]:
    btc, eth = real_pair()
    panel = Panel.from_bars({"BTCUSDT": tiled(btc, n), "ETHUSDT": tiled(eth, n)})
    note = (
        f"{len(btc):,} real aligned rows per symbol (BTCUSDT + ETHUSDT 1m, no gaps), appended "
        f"to themselves with shifted times to {n:,} ({n / len(btc):.2f} copies; prices jump "
        "back at each seam)"
    )
    return panel, note


def sma_sign_weights(close: FloatArray) -> FloatArray:
    """Each column +1/m while SMA(FAST) > SMA(SLOW), -1/m while below, 0 on ties and warm-up."""
    frame = pd.DataFrame(close)
    spread = (frame.rolling(FAST).mean() - frame.rolling(SLOW).mean()).to_numpy()
    out: FloatArray = np.sign(np.nan_to_num(spread)) / close.shape[1]
    return out


def vectorbt_sizes(weights: FloatArray) -> FloatArray:
    """Weights moved to their fill row (the next bar), NaN where the weight is unchanged."""
    changed = np.empty(weights.shape, dtype=bool)
    changed[0] = weights[0] != 0.0
    changed[1:] = weights[1:] != weights[:-1]
    size = np.full(weights.shape, np.nan)
    size[1:] = np.where(changed[:-1], weights[:-1], np.nan)
    return size


class VectorbtInputs:
    """vectorbt's DataFrames, built once outside the timed region."""

    def __init__(self, panel: Panel, weights: FloatArray) -> None:
        index = pd.to_datetime(panel.open_time_ms, unit="ms")
        columns = list(panel.symbols)
        self.close = pd.DataFrame(panel.close, index=index, columns=columns)
        self.price = pd.DataFrame(panel.open, index=index, columns=columns)
        self.size = pd.DataFrame(vectorbt_sizes(weights), index=index, columns=columns)


def vectorbt_run(inputs: VectorbtInputs, config: PortfolioConfig) -> Any:
    """The same run in vectorbt, with our config's capital, fees and slippage."""
    return vbt.Portfolio.from_orders(
        close=inputs.close,
        size=inputs.size,
        size_type="targetpercent",
        price=inputs.price,
        fees=config.fee_bps * BPS,
        slippage=config.slippage_bps * BPS,
        cash_sharing=True,
        group_by=True,
        call_seq="auto",
        init_cash=config.initial_capital,
        freq="1min",
    )


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Median wall time over ``repeat`` runs, and the last result."""
    times: list[float] = []
    result: T | None = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--cash", type=float, default=10_000.0, help="starting capital")
    parser.add_argument("--fee-bps", type=float, default=1.0)
    parser.add_argument("--slippage-bps", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # third-party deprecation chatter, not results

    panel, note = million_bar_panel(args.bars)
    weights = sma_sign_weights(panel.close)
    config = PortfolioConfig(args.cash, args.fee_bps, args.slippage_bps)
    inputs = VectorbtInputs(panel, weights)
    small = panel.slice(0, WARM_UP_BARS)
    small_weights = weights[:WARM_UP_BARS]

    # Warm-up: compile (or load from numba's cache) both tools' kernels on a small slice.
    run_portfolio(small, small_weights, config)
    vectorbt_run(VectorbtInputs(small, small_weights), config).value()

    t_ours, ours = timed(lambda: run_portfolio(panel, weights, config), args.repeat)
    repeat_vbt = max(1, args.repeat // 2 + 1)
    t_vbt, pf = timed(lambda: vectorbt_run(inputs, config), repeat_vbt)
    t_vbt_value, _ = timed(lambda: vectorbt_run(inputs, config).value(), repeat_vbt)

    final_ours = float(ours.equity[-1])
    final_vbt = float(pf.final_value())
    rel = abs(final_ours / final_vbt - 1.0)
    n_orders = len(pf.orders.records)
    print(f"data: {note}")
    print(
        f"workload: {len(panel):,} bars x {panel.n_symbols} symbols, SMA({FAST}/{SLOW}) sign, "
        f"weights +-1/2, fee {args.fee_bps:g} bps + slippage {args.slippage_bps:g} bps, "
        "next-open fills, "
        f"capital {args.cash:g}"
    )
    print(
        f"agreement: final equity ours {final_ours:.12g}, vectorbt {final_vbt:.12g}, relative "
        f"difference {rel:.1e} ({'equal' if rel <= AGREEMENT_RTOL else 'DIFFERENT'} to "
        f"{AGREEMENT_RTOL:g}); fills ours {len(ours.fills):,}, vectorbt {n_orders:,}"
    )
    print(f"\n{'tool':<34} {'seconds':>9} {'vectorbt / ours':>16}  note")
    rows = (
        ("finplat run_portfolio", t_ours, f"median of {args.repeat}, after warm-up"),
        ("vectorbt from_orders", t_vbt, f"median of {repeat_vbt}, after warm-up"),
        ("vectorbt from_orders + value()", t_vbt_value, "the same, with its equity curve"),
    )
    for name, seconds, how in rows:
        print(f"{name:<34} {seconds:>9.3f} {seconds / t_ours:>15.1f}x  {how}")


if __name__ == "__main__":
    main()

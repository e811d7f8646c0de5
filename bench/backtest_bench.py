"""Benchmark: SMA-crossover backtest on 1,000,000 one-minute BTCUSDT bars.

Compares our engine with vectorbt and backtesting.py on the same bars, the same rule
(long while SMA(10) > SMA(30), short while below, next-open fills) and 10 bps fees, trades and
metrics included, and with the same rule written as a user strategy in plain numpy (the
README's example); then times a 100-combination sweep. Run:

    PYTHONPATH=src python bench/backtest_bench.py

Needs the bench-only packages vectorbt and backtesting (and pandas). Real data comes from
FINPLAT_DATA_DIR (default ../shared/data/binance next to the repository).

Starting capital defaults to 1e40, not 10,000: at 10 bps a side, SMA(10/30) on 1m bars
makes ~40,000 round trips, which shrink equity by ~e^-80. From $10,000 the other two tools
stop filling orders once their cash rounds to nothing (vectorbt after ~8,500 trades,
backtesting.py after ~11,000) and then time a much lighter workload. With 1e40 every tool
fills all ~40,000 trades (printed below); percentages, ratios and timings do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import vectorbt as vbt  # type: ignore[import-untyped]
from backtesting import Strategy  # type: ignore[import-untyped]
from backtesting.lib import FractionalBacktest  # type: ignore[import-untyped]

from finplat.backtest.adapters.kline_files import load_bars
from finplat.backtest.adapters.strategy_loader import load_user_strategies
from finplat.backtest.adapters.sweep_executor import Backend, run_sweep
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig, run_strategy
from finplat.binance.archive import daily_kline_paths
from finplat.replay.settings import ReplaySettings

FAST, SLOW, FEE = 10, 30, 0.001
EXAMPLE_STRATEGIES = Path(__file__).resolve().parent.parent / "examples" / "strategies"
SWEEP_GRID = {
    "fast": [5, 8, 10, 12, 15, 20, 25, 30, 40, 50],
    "slow": [60, 80, 100, 120, 150, 180, 210, 240, 270, 300],
}


def data_dir() -> Path:
    return ReplaySettings().data_dir  # FINPLAT_DATA_DIR, as the replay reads it


def million_bars(n: int) -> tuple[Bars, str]:
    """Real contiguous 1m klines (2024-10-01 .. 2025-01-07), tiled with shifted times to ``n``."""
    paths = daily_kline_paths(data_dir(), "BTCUSDT", "1m", date(2024, 10, 1), date(2025, 1, 7))
    real = load_bars(paths)
    span = int(real.open_time_ms[-1] - real.open_time_ms[0]) + 60_000
    copies = -(-n // len(real))
    bars = Bars.concat([real.shift_time(i * span) for i in range(copies)]).slice(0, n)
    note = (
        f"{len(real):,} real rows (BTCUSDT 1m 2024-10-01..2025-01-07, no gaps); "
        f"fewer than {n:,}, so the series is appended to itself with times shifted "
        f"({n / len(real):.2f} copies; prices jump back at each seam)"
        if len(real) < n
        else f"{n:,} real rows"
    )
    return bars, note


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time over ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def ours(bars: Bars, cash: float, strategy: str = "sma_crossover") -> Any:
    config = EngineConfig(cash, fee_bps=FEE * 1e4)
    return run_strategy(bars, strategy, {"fast": FAST, "slow": SLOW}, config)


def _shift(state: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    out = np.zeros_like(state)
    out[1:] = state[:-1]
    return out


def vectorbt_run(bars: Bars, cash: float) -> dict[str, float]:
    index = pd.to_datetime(bars.open_time_ms, unit="ms")
    close = pd.Series(bars.close, index=index)
    fast = vbt.MA.run(close, FAST).ma.to_numpy()
    slow = vbt.MA.run(close, SLOW).ma.to_numpy()
    # Decided at bar i's close, filled at bar i+1's open, like ours.
    pf = vbt.Portfolio.from_signals(
        close,
        entries=_shift(fast > slow),
        short_entries=_shift(fast < slow),
        price=pd.Series(bars.open, index=index),
        fees=FEE,
        init_cash=cash,
        freq="1min",
    )
    trades = pf.trades
    return {
        "final_value": pf.final_value(),
        "total_return": pf.total_return(),
        "cagr": pf.annualized_return(),
        "volatility": pf.annualized_volatility(),
        "sharpe": pf.sharpe_ratio(),
        "sortino": pf.sortino_ratio(),
        "calmar": pf.calmar_ratio(),
        "max_drawdown": pf.max_drawdown(),
        "win_rate": trades.win_rate(),
        "profit_factor": trades.profit_factor(),
        "n_trades": trades.count(),
        "avg_pnl": trades.pnl.mean(),
        "n_records": len(trades.records),
    }


def backtesting_run(bars: Bars, cash: float) -> Any:
    def spread(close: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        s = pd.Series(close)
        out: npt.NDArray[np.float64] = np.nan_to_num(
            (s.rolling(FAST).mean() - s.rolling(SLOW).mean()).to_numpy()
        )
        return out

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.spread = self.I(spread, self.data.Close)

        def next(self) -> None:
            if self.spread[-1] > 0 and not self.position.is_long:
                self.buy()
            elif self.spread[-1] < 0 and not self.position.is_short:
                self.sell()

    frame = pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
         "Volume": bars.volume},
        index=pd.to_datetime(bars.open_time_ms, unit="ms"),
    )  # fmt: skip
    bt = FractionalBacktest(
        frame, SmaCross, cash=cash, commission=FEE, trade_on_close=False,
        exclusive_orders=True, fractional_unit=1e-10,
    )  # fmt: skip
    return bt.run()


def measure(part: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one measurement (in its own process, so tools do not share heap state)."""
    warnings.simplefilter("ignore")  # third-party deprecation chatter, not results
    bars, note = million_bars(args.bars)
    cash = args.cash
    if part in ("ours", "user-numpy"):
        # The README's example strategy: the same rule written by a user in plain numpy.
        strategy = "sma_crossover" if part == "ours" else "numpy_sma_crossover"
        load_user_strategies([EXAMPLE_STRATEGIES])
        ours(bars.slice(0, 5_000), cash, strategy)  # JIT warm-up (loads numba's on-disk cache)
        seconds, res = timed(lambda: ours(bars, cash, strategy), args.repeat)
        m = res.metrics
        info = f"{m.n_trades:,} trades, final equity {m.final_equity:.6g}, sharpe {m.sharpe:.4f}"
        return {"seconds": seconds, "info": info, "note": note,
                "how": f"median of {args.repeat}, after JIT warm-up"}  # fmt: skip
    if part == "vectorbt":
        vectorbt_run(bars.slice(0, 5_000), cash)  # compile/warm vectorbt's numba functions
        repeat = max(1, args.repeat // 2)
        seconds, v = timed(lambda: vectorbt_run(bars, cash), repeat)
        info = (
            f"{int(v['n_trades']):,} trades, final equity {v['final_value']:.6g} "
            f"(its cash keeps ~1e-16 x capital of rounding residue), sharpe {v['sharpe']:.4f}"
        )
        return {"seconds": seconds, "info": info, "how": f"median of {repeat}, after warm-up"}
    if part == "backtesting":
        size = min(args.bt_slice, len(bars))
        start = time.perf_counter()
        stats = backtesting_run(bars.slice(0, size), cash)
        t_slice = time.perf_counter() - start
        seconds, how = (
            t_slice * len(bars) / size,
            f"EXTRAPOLATED from {size:,} bars ({t_slice:.2f} s)",
        )
        if size == len(bars) or seconds <= args.bt_limit:
            start = time.perf_counter()
            stats = backtesting_run(bars, cash)
            seconds, how = time.perf_counter() - start, "one full run"
        info = (
            f"{stats['# Trades']:,} closed trades (+1 left open), "
            f"final equity {stats['Equity Final [$]']:.6g} (open trade marked, no exit fee)"
        )
        return {"seconds": seconds, "info": info, "how": how}
    backend = cast(Backend, part.removeprefix("sweep-"))
    workers = 1 if backend == "serial" else 2
    cfg = EngineConfig(cash, fee_bps=FEE * 1e4)
    run_sweep(bars.slice(0, 5_000), "sma_crossover", SWEEP_GRID, cfg, workers=1)  # warm-up
    repeat = max(1, args.repeat // 2)
    seconds, report = timed(
        lambda: run_sweep(bars, "sma_crossover", SWEEP_GRID, cfg, workers=workers, backend=backend),
        repeat,
    )
    best = report.results[0]
    info = f"best by sharpe {best.params.as_dict()} ({best.metrics.sharpe:.3f})"
    how = f"{len(report.results)} backtests, {workers} worker(s), median of {repeat}"
    return {"seconds": seconds, "info": info, "how": how}


PARTS = (
    "ours",
    "user-numpy",
    "vectorbt",
    "backtesting",
    "sweep-thread",
    "sweep-process",
    "sweep-serial",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--cash", type=float, default=1e40, help="starting capital")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--bt-slice", type=int, default=50_000, help="backtesting.py slice")
    parser.add_argument("--bt-limit", type=float, default=60.0, help="extrapolate beyond (s)")
    parser.add_argument("--only", choices=PARTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only, args)))
        return

    results: dict[str, dict[str, Any]] = {}
    for part in PARTS:
        cmd = [sys.executable, __file__, "--only", part, *sys.argv[1:]]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[part] = json.loads(out.strip().splitlines()[-1])
    grid_n = len(SWEEP_GRID["fast"]) * len(SWEEP_GRID["slow"])
    print(f"data: {results['ours']['note']}")
    print(
        f"workload: SMA({FAST}/{SLOW}) long/short, fee {FEE * 1e4:.0f} bps a side, next-open "
        f"fills, capital {args.cash:g}, trades + metrics included; each row in a fresh process"
    )
    for part in PARTS:
        print(f"  {part:<14} {results[part]['info']}")
    t_ours = results["ours"]["seconds"]
    print(f"\n{'tool':<28} {'seconds':>9} {'bars/s':>14} {'vs ours':>9}  note")
    for part, name in zip(PARTS, LABELS, strict=True):
        seconds = results[part]["seconds"]
        processed = args.bars * (grid_n if part.startswith("sweep") else 1)
        print(
            f"{name:<28} {seconds:>9.3f} {processed / seconds:>14,.0f} "
            f"{seconds / t_ours:>8.1f}x  {results[part]['how']}"
        )


LABELS = (
    "finplat engine",
    "user numpy SMA (examples/)",
    "vectorbt",
    "backtesting.py",
    "sweep 100 combos, thread",
    "sweep 100 combos, process",
    "sweep 100 combos, serial",
)


if __name__ == "__main__":
    main()

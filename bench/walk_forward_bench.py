"""Benchmark: walk-forward of sma_crossover, 12 folds x 100 combinations, on 1,000,000 bars.

Beside it, in the same run and on the same bars, the reference: the plain 100-combination
sweep of all the bars (``run_sweep``, thread backend), which is also the first step of a
walk-forward (its whole-period optimum). Both run on 2 threads sharing one indicator memo per
sweep. Run:

    .venv/bin/python bench/walk_forward_bench.py

The bars, the grid and the capital are those of ``bench/backtest_bench.py`` (real BTCUSDT 1m
klines from FINPLAT_DATA_DIR tiled to 1M rows; ``SWEEP_GRID``; capital 1e40 and 10 bps fees,
see there why). The layout is ``FoldLayout.from_ratio(bars, 12, 4)``: out-of-sample windows
of 62,500 bars after in-sample windows of 250,000 (rolling) or from bar 0 (anchored), with a
warm-up of 300 bars (the slowest SMA) before each out-of-sample window.

The work in bar-backtests: the whole-period sweep (1M x 100), the in-sample sweeps (rolling
12 x 250k x 100, anchored 7.125M x 100) and 12 x 62.5k out-of-sample bars; so 4x the
reference rolling and 8.1x anchored, were every bar as fast. The table splits each
walk-forward into its sweeps (the rest is the out-of-sample runs and the stitching).
Parts run in interleaved rounds, medians printed, so that other load on the machine skews
the ratios less; importing ``backtest_bench`` needs the bench group (vectorbt, backtesting).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

# bench/ is sys.path[0] when this file runs as a script, and mypy resolves it the same way.
from backtest_bench import FEE, SWEEP_GRID, million_bars

from finplat.backtest.adapters.sweep_executor import run_plan_in_threads, run_sweep
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.sweep import SweepPlan, SweepReport
from finplat.backtest.domain.walk_forward import (
    FoldLayout,
    RunPlan,
    WalkForwardReport,
    WindowMode,
    walk_forward,
)

STRATEGY = "sma_crossover"
WARMUP = max(SWEEP_GRID["slow"])


def thread_run_plan(workers: int, seconds: list[float]) -> RunPlan:
    """The service's thread executor, adding each sweep's wall time to ``seconds``."""

    def run(plan: SweepPlan) -> Sequence[Metrics]:
        start = time.perf_counter()
        metrics = run_plan_in_threads(plan, workers)
        seconds.append(time.perf_counter() - start)
        return metrics

    return run


def reference(bars: Bars, config: EngineConfig, workers: int) -> SweepReport:
    return run_sweep(bars, STRATEGY, SWEEP_GRID, config, workers=workers, backend="thread")


def walk(
    bars: Bars, layout: FoldLayout, config: EngineConfig, run_plan: RunPlan
) -> WalkForwardReport:
    return walk_forward(
        bars, STRATEGY, SWEEP_GRID, layout, config, warmup_bars=WARMUP, run_plan=run_plan
    )


def describe(name: str, wf: WalkForwardReport) -> None:
    whole, stitched = wf.whole_period, wf.stitched.metrics
    chosen = [f"{f.params['fast']}/{f.params['slow']}" for f in wf.folds]
    print(
        f"  {name}: whole-period best {whole.params} sharpe {whole.metrics.sharpe:.3f}; "
        f"stitched out-of-sample sharpe {stitched.sharpe:.3f}, "
        f"growth x{1 + stitched.total_return:.3g}, {stitched.n_trades:,} trades"
    )
    print(f"    chosen fast/slow per fold: {' '.join(chosen)}")


@dataclass
class Timings:
    """Wall seconds of each round of one part; for a walk-forward, of its sweeps too."""

    total: list[float] = field(default_factory=list)
    whole_sweep: list[float] = field(default_factory=list)
    fold_sweeps: list[float] = field(default_factory=list)


def time_walk(
    bars: Bars, layout: FoldLayout, config: EngineConfig, workers: int, into: Timings
) -> WalkForwardReport:
    sweeps: list[float] = []
    start = time.perf_counter()
    wf = walk(bars, layout, config, thread_run_plan(workers, sweeps))
    into.total.append(time.perf_counter() - start)
    # The whole-period sweep runs first, then the folds' in-sample sweeps.
    into.whole_sweep.append(sweeps[0])
    into.fold_sweeps.append(sum(sweeps[1:]))
    return wf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--folds", type=int, default=12)
    parser.add_argument("--ratio", type=float, default=4.0, help="in-sample : out-of-sample")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cash", type=float, default=1e40, help="starting capital")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    bars, note = million_bars(args.bars)
    config = EngineConfig(args.cash, fee_bps=FEE * 1e4)
    layouts = {
        mode: FoldLayout.from_ratio(len(bars), args.folds, args.ratio, mode) for mode in WindowMode
    }
    # Warm-up outside every timing: the JIT (numba's on-disk cache) on a few bars, then one
    # full-size sweep, whose first run also pays for growing the heap (~1.7x slower).
    small = bars.slice(0, 5_000)
    walk(small, FoldLayout(2, 1_000, 1_000), config, thread_run_plan(args.workers, []))
    reference(bars, config, args.workers)

    # Rounds interleave the parts, so that a load change on the machine hits all of them.
    ref = Timings()
    walks = {mode: Timings() for mode in WindowMode}
    reports: dict[WindowMode, WalkForwardReport] = {}
    for _ in range(args.repeat):
        start = time.perf_counter()
        best = reference(bars, config, args.workers).results[0]
        ref.total.append(time.perf_counter() - start)
        for mode, layout in layouts.items():
            reports[mode] = time_walk(bars, layout, config, args.workers, walks[mode])

    combos = len(SWEEP_GRID["fast"]) * len(SWEEP_GRID["slow"])
    rolling = layouts[WindowMode.ROLLING]
    print(f"data: {note}")
    print(
        f"layout: {args.folds} folds, out-of-sample {rolling.out_of_sample_bars:,} bars, "
        f"in-sample {rolling.in_sample_bars:,} (rolling) or from bar 0 (anchored), "
        f"warm-up {WARMUP}; {combos} combos; fee {FEE * 1e4:.0f} bps; "
        f"{args.workers} threads; median of {args.repeat} interleaved rounds"
    )
    print(f"  reference: best {best.params.as_dict()} by sharpe {best.metrics.sharpe:.3f}")
    for mode, wf in reports.items():
        describe(mode.value, wf)

    t_ref = statistics.median(ref.total)
    print(f"\n{'part':<30} {'seconds':>8} {'bar-backtests/s':>16} {'vs reference':>13}  note")
    print(
        f"{'sweep, all bars (reference)':<30} {t_ref:>8.2f} {len(bars) * combos / t_ref:>16,.0f} "
        f"{1:>12.2f}x"
    )
    for mode, wf in reports.items():
        t = walks[mode]
        seconds = statistics.median(t.total)
        swept = sum(f.in_sample.stop - f.in_sample.start for f in wf.folds) + len(bars)
        how = (
            f"whole-period sweep {statistics.median(t.whole_sweep):.2f} s + {args.folds} "
            f"in-sample sweeps {statistics.median(t.fold_sweeps):.2f} s"
        )
        print(
            f"{'walk-forward, ' + mode.value:<30} {seconds:>8.2f} "
            f"{swept * combos / seconds:>16,.0f} {seconds / t_ref:>12.2f}x  {how}"
        )


if __name__ == "__main__":
    main()

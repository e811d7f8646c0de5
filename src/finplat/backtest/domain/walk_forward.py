"""Walk-forward optimisation: optimise on an in-sample window, trade the window after it.

Fold layout (``FoldLayout``), in bars, as sklearn's ``TimeSeriesSplit`` lays out its splits:
the ``n_folds`` out-of-sample (OOS) windows of ``out_of_sample_bars`` each are consecutive,
do not overlap, and end at the last bar, so the most recent data is always traded. Each
in-sample (IS) window ends where its OOS window starts:

* ``rolling``: IS is the ``in_sample_bars`` just before the OOS window (``max_train_size``),
  sliding forward by ``out_of_sample_bars`` per fold; bars before the first IS are unused.
* ``anchored``: IS starts at bar 0 and grows (sklearn without ``max_train_size``); the first
  IS holds every bar before the first OOS window, at least ``in_sample_bars``.

E.g. 20 bars, 3 folds, 6 IS and 4 OOS bars: OOS [8, 12), [12, 16), [16, 20); rolling IS
[2, 8), [6, 12), [10, 16); anchored IS [0, 8), [0, 12), [0, 16). ``FoldLayout.from_ratio``
derives the two lengths from an IS:OOS ratio so that the folds fill the bars; ratio 1 in
anchored mode is sklearn's default ``TimeSeriesSplit(n_splits=n_folds)``.

Each fold sweeps the grid on its IS bars (``plan_sweep``: same grid semantics, same
``rank_by`` names and direction; a NaN metric never wins, and a fold where every combo's is
NaN raises) and backtests the best params on its OOS window, from ``initial_capital``.

Warm-up: each fold's OOS result equals one single backtest with those params on that window.
With ``warmup_bars=0`` it is ``run_strategy(bars.slice(oos_start, oos_end), params)``: the
indicators warm up inside the window, whose first bars are flat as in any backtest of that
range. With ``warmup_bars=k`` the strategy's targets are computed on the bars
``[oos_start - k, oos_end)`` (already known when the window starts, so no look-ahead) and
the window is backtested with its own targets: ``run_backtest(bars.slice(oos_start,
oos_end), targets[k:])``. The IS sweeps never take a warm-up: they are ``plan_sweep`` on the
IS bars.

The stitched OOS equity chains the folds as one account: each fold's curve is scaled so that
it starts where the previous one ended. The engine sizes in fractional units, so this equals
running the fold from the previous end equity. Positions do not carry across folds: each
fold starts flat and is liquidated at its last close, as its own backtest is. The stitched
trades are the folds' trades, money scaled the same way, bars indexed into the stitched curve.

The whole-period optimum is the same sweep over all the bars (the unused leading bars of a
rolling layout included): the hindsight best. Its metric beside the stitched OOS one (e.g.
sharpe) is the overfitting gap.

Every backtest, in-sample and out-of-sample, runs with one config: the given one, with
``bars_per_year`` derived once from all the bars when it is None (``WalkForwardReport.config``;
the equalities above hold with that config).

Where the sweeps run is the caller's: ``run_plan`` maps a ``SweepPlan`` to its metrics
(serial by default; the service passes a thread pool). The whole-period sweep runs first,
then the folds, with ``on_progress(folds_done, n_folds)`` after each; an exception raised by
``on_progress`` (or by ``run_plan``) cancels the walk-forward and propagates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import BacktestResult, EngineConfig, run_backtest
from finplat.backtest.domain.errors import InvalidBarsError, InvalidConfigError
from finplat.backtest.domain.metrics import Metrics, bars_per_year, compute_metrics
from finplat.backtest.domain.strategies import get_strategy
from finplat.backtest.domain.sweep import (
    METRIC_NAMES,
    SkippedCombo,
    SweepPlan,
    SweepResult,
    plan_sweep,
)
from finplat.backtest.domain.trades import TradeLog

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ParamValues = dict[str, int | float]

RunPlan = Callable[[SweepPlan], Sequence[Metrics]]
"""Runs every combination of a plan and returns their metrics in ``plan.combos`` order."""
Progress = Callable[[int, int], None]
"""Called with (folds done, folds in all) after each fold; raise to cancel."""

# The engine needs two bars to backtest and a sweep two to rank.
_MIN_WINDOW = 2


class WindowMode(StrEnum):
    ROLLING = "rolling"
    ANCHORED = "anchored"


def _check_count(name: str, value: object, minimum: int) -> None:
    # bool is an int to Python, never a count to a user.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class FoldBounds:
    """Bar index ranges of one fold (``range``: start inclusive, stop exclusive)."""

    index: int
    in_sample: range
    out_of_sample: range


@dataclass(frozen=True, slots=True)
class FoldLayout:
    """How the bars are cut into folds; see the module docstring for the rule."""

    n_folds: int
    in_sample_bars: int
    out_of_sample_bars: int
    mode: WindowMode = WindowMode.ROLLING

    def __post_init__(self) -> None:
        _check_count("n_folds", self.n_folds, 1)
        _check_count("in_sample_bars", self.in_sample_bars, _MIN_WINDOW)
        _check_count("out_of_sample_bars", self.out_of_sample_bars, _MIN_WINDOW)
        try:
            object.__setattr__(self, "mode", WindowMode(self.mode))
        except ValueError:
            modes = [m.value for m in WindowMode]
            raise InvalidConfigError(f"mode must be one of {modes}, got {self.mode!r}") from None

    @classmethod
    def from_ratio(
        cls,
        n_bars: int,
        n_folds: int,
        in_sample_ratio: float = 1.0,
        mode: WindowMode = WindowMode.ROLLING,
    ) -> FoldLayout:
        """The layout filling ``n_bars`` with IS windows ~``in_sample_ratio`` x the OOS ones.

        OOS length is ``n_bars // (n_folds + in_sample_ratio)``; the first IS window takes
        the rest, so no bar is unused (ratio 1, anchored: sklearn's default TimeSeriesSplit).
        """
        _check_count("n_folds", n_folds, 1)
        if not (math.isfinite(in_sample_ratio) and in_sample_ratio > 0):
            raise InvalidConfigError(f"in_sample_ratio must be > 0, got {in_sample_ratio!r}")
        out_of_sample = math.floor(n_bars / (n_folds + in_sample_ratio))
        if out_of_sample < _MIN_WINDOW:
            raise InvalidConfigError(
                f"too few bars: {n_bars} bars in {n_folds} folds at in-sample ratio "
                f"{in_sample_ratio} leave {out_of_sample} out-of-sample bars a fold, "
                f"need >= {_MIN_WINDOW}"
            )
        return cls(n_folds, n_bars - n_folds * out_of_sample, out_of_sample, mode)

    @property
    def bars_needed(self) -> int:
        return self.in_sample_bars + self.n_folds * self.out_of_sample_bars

    def folds(self, n_bars: int) -> tuple[FoldBounds, ...]:
        """The folds of ``n_bars`` bars, oldest first."""
        if n_bars < self.bars_needed:
            raise InvalidConfigError(
                f"too few bars: {self.n_folds} folds of {self.out_of_sample_bars} "
                f"out-of-sample bars after {self.in_sample_bars} in-sample bars need "
                f"{self.bars_needed}, got {n_bars}"
            )
        first_oos = n_bars - self.n_folds * self.out_of_sample_bars
        out: list[FoldBounds] = []
        for i in range(self.n_folds):
            oos_start = first_oos + i * self.out_of_sample_bars
            is_start = 0 if self.mode is WindowMode.ANCHORED else oos_start - self.in_sample_bars
            out.append(
                FoldBounds(
                    i,
                    range(is_start, oos_start),
                    range(oos_start, oos_start + self.out_of_sample_bars),
                )
            )
        return tuple(out)


@dataclass(frozen=True, slots=True)
class BarWindow:
    """Bars ``start`` (inclusive) to ``stop`` (exclusive) and the open times of their first
    and last bar."""

    start: int
    stop: int
    first_open_ms: int
    last_open_ms: int

    @staticmethod
    def of(bars: Bars, rows: range) -> BarWindow:
        times = bars.open_time_ms
        return BarWindow(rows.start, rows.stop, int(times[rows.start]), int(times[rows.stop - 1]))


@dataclass(frozen=True, slots=True)
class FoldResult:
    """One fold: its windows, the params its IS sweep chose, and how they did on both."""

    index: int
    in_sample: BarWindow
    out_of_sample: BarWindow
    params: ParamValues
    in_sample_metrics: Metrics
    out_of_sample_result: BacktestResult

    @property
    def out_of_sample_metrics(self) -> Metrics:
        return self.out_of_sample_result.metrics


@dataclass(frozen=True, slots=True)
class StitchedEquity:
    """The OOS windows chained as one account (see the module docstring).

    ``scale[i]`` multiplies fold i's money (equity, trade size, pnl, fees); ``fold_start[i]``
    is the row of ``equity`` where fold i begins, and trade bars index ``equity``.
    """

    equity: FloatArray
    open_time_ms: IntArray
    trades: TradeLog
    metrics: Metrics
    scale: tuple[float, ...]
    fold_start: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PeriodOptimum:
    """The best params of the sweep over ``window`` and their metrics there."""

    window: BarWindow
    params: ParamValues
    metrics: Metrics


@dataclass(frozen=True, slots=True)
class WalkForwardReport:
    """Folds oldest first, their stitched OOS equity, and the whole-period optimum.

    ``config`` is the one every backtest ran with (``bars_per_year`` derived once from all
    the bars when not given). ``skipped`` are the grid's combos invalid as a whole.
    """

    strategy: str
    rank_by: str
    layout: FoldLayout
    warmup_bars: int
    config: EngineConfig
    folds: tuple[FoldResult, ...]
    stitched: StitchedEquity
    whole_period: PeriodOptimum
    skipped: tuple[SkippedCombo, ...]


def run_serially(plan: SweepPlan) -> Sequence[Metrics]:
    """The default ``run_plan``: every combo in the calling thread."""
    return plan.job.run(plan.combos)


def _best(plan: SweepPlan, run_plan: RunPlan, where: str) -> SweepResult:
    """The plan's winner by its ``rank_by``; InvalidConfigError when nothing can win."""
    if not plan.combos:
        raise InvalidConfigError(
            f"the grid has no valid combination ({plan.grid.skipped_count} skipped)"
        )
    ranking = plan.ranking(top_n=1)
    ranking.add(0, plan.combos, run_plan(plan))
    (best,) = ranking.best()
    # The report ranks NaN last, so a NaN winner means every combo's metric is NaN.
    if math.isnan(float(getattr(best.metrics, plan.rank_by))):
        raise InvalidConfigError(
            f"{plan.rank_by} is NaN for every combination on {where}; nothing to choose "
            f"(rank by another metric or lengthen the window)"
        )
    return best


def _out_of_sample(
    bars: Bars,
    strategy: str,
    best: SweepResult,
    rows: range,
    warmup_bars: int,
    config: EngineConfig,
) -> BacktestResult:
    """The window's backtest with targets computed from ``warmup_bars`` earlier."""
    span = bars.slice(rows.start - warmup_bars, rows.stop)
    targets = get_strategy(strategy).signal(span, best.params)
    return run_backtest(bars.slice(rows.start, rows.stop), targets[warmup_bars:], config)


def _scaled_trades(log: TradeLog, scale: float, offset: int) -> TradeLog:
    # Prices and returns are scale-free; sizes and money scale; bars index the stitched curve.
    return replace(
        log,
        entry_bar=log.entry_bar + offset,
        exit_bar=log.exit_bar + offset,
        size=log.size * scale,
        pnl=log.pnl * scale,
        fees=log.fees * scale,
    )


def _concat_trades(logs: Sequence[TradeLog]) -> TradeLog:
    columns = {
        f.name: np.concatenate([getattr(log, f.name) for log in logs]) for f in fields(TradeLog)
    }
    return TradeLog(**columns)


def stitch(results: Sequence[BacktestResult], config: EngineConfig) -> StitchedEquity:
    """Chain consecutive OOS backtests, each run from ``config.initial_capital``, as one account.

    An account at or below zero takes no further trades (the engine enters only with cash),
    so the folds after it stay flat at that equity.
    """
    if not results:
        raise InvalidBarsError("nothing to stitch")
    capital = config.initial_capital
    level = capital
    curves: list[FloatArray] = []
    logs: list[TradeLog] = []
    scales: list[float] = []
    starts: list[int] = []
    offset = exposed = 0
    for result in results:
        n = int(result.equity.shape[0])
        scale = level / capital if level > 0 else 0.0
        if scale > 0:
            curves.append(result.equity * scale)
            logs.append(_scaled_trades(result.trades, scale, offset))
            exposed += int(np.count_nonzero(result.side))
        else:
            curves.append(np.full(n, level))
        scales.append(scale)
        starts.append(offset)
        offset += n
        level = float(curves[-1][-1])
    equity = np.concatenate(curves)
    times = np.concatenate([r.open_time_ms for r in results])
    # The first fold always trades from capital > 0, so there is at least one log.
    trades = _concat_trades(logs)
    periods = config.bars_per_year or bars_per_year(times)
    return StitchedEquity(
        equity=equity,
        open_time_ms=times,
        trades=trades,
        metrics=compute_metrics(equity, trades, capital, exposed, periods),
        scale=tuple(scales),
        fold_start=tuple(starts),
    )


def _resolved(bars: Bars, config: EngineConfig | None) -> EngineConfig:
    # One bars_per_year for every window, so that annualised metrics compare across folds.
    cfg = config or EngineConfig()
    if cfg.bars_per_year is None:
        cfg = replace(cfg, bars_per_year=bars_per_year(bars.open_time_ms))
    return cfg


def _check_run(folds: Sequence[FoldBounds], rank_by: str, warmup_bars: int) -> None:
    if rank_by not in METRIC_NAMES:
        raise InvalidConfigError(f"rank_by must be one of {METRIC_NAMES}, got {rank_by!r}")
    _check_count("warmup_bars", warmup_bars, 0)
    first_oos = folds[0].out_of_sample.start
    if warmup_bars > first_oos:
        raise InvalidConfigError(
            f"warmup_bars ({warmup_bars}) must not exceed the {first_oos} bars "
            f"before the first out-of-sample window"
        )


def walk_forward(
    bars: Bars,
    strategy: str,
    grid: Mapping[str, Sequence[object]],
    layout: FoldLayout,
    config: EngineConfig | None = None,
    rank_by: str = "sharpe",
    *,
    warmup_bars: int = 0,
    run_plan: RunPlan = run_serially,
    on_progress: Progress | None = None,
) -> WalkForwardReport:
    """Walk ``strategy`` forward over ``bars`` along ``layout`` (see the module docstring).

    ``grid`` and ``rank_by`` are those of ``plan_sweep``. Raises InvalidConfigError for a
    layout or warm-up the bars cannot hold, and what ``plan_sweep`` raises for a bad grid.
    """
    bounds = layout.folds(len(bars))
    _check_run(bounds, rank_by, warmup_bars)
    cfg = _resolved(bars, config)
    # First, so that a bad grid fails before any fold runs and progress ends with the work.
    whole = plan_sweep(bars, strategy, grid, cfg, rank_by)
    whole_best = _best(whole, run_plan, "all the bars")
    folds: list[FoldResult] = []
    for fold in bounds:
        rows = fold.in_sample
        plan = plan_sweep(bars.slice(rows.start, rows.stop), strategy, grid, cfg, rank_by)
        best = _best(plan, run_plan, f"the in-sample bars of fold {fold.index} {rows}")
        oos = _out_of_sample(bars, strategy, best, fold.out_of_sample, warmup_bars, cfg)
        folds.append(
            FoldResult(
                fold.index,
                BarWindow.of(bars, rows),
                BarWindow.of(bars, fold.out_of_sample),
                best.params.as_dict(),
                best.metrics,
                oos,
            )
        )
        if on_progress is not None:
            on_progress(len(folds), len(bounds))
    return WalkForwardReport(
        strategy=strategy,
        rank_by=rank_by,
        layout=layout,
        warmup_bars=warmup_bars,
        config=cfg,
        folds=tuple(folds),
        stitched=stitch([f.out_of_sample_result for f in folds], cfg),
        whole_period=PeriodOptimum(
            BarWindow.of(bars, range(len(bars))), whole_best.params.as_dict(), whole_best.metrics
        ),
        skipped=tuple(whole.grid.skipped),
    )

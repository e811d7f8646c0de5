"""Walk-forward: fold layouts by hand, choices against our own grid loop, each OOS window
against a single backtest of it, the stitched account, and the configs that must fail."""

import itertools
import math
from collections.abc import Sequence
from dataclasses import astuple, replace

import numpy as np
import pytest

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import (
    BacktestResult,
    EngineConfig,
    run_backtest,
    run_strategy,
)
from finplat.backtest.domain.errors import InvalidConfigError, InvalidParameterError
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.strategies import get_strategy
from finplat.backtest.domain.sweep import SweepPlan
from finplat.backtest.domain.trades import TradeLog
from finplat.backtest.domain.walk_forward import (
    FoldBounds,
    FoldLayout,
    WalkForwardReport,
    WindowMode,
    run_serially,
    stitch,
    walk_forward,
)
from tests.unit.backtest.helpers import MINUTE_MS, make_bars

STRATEGY = "sma_crossover"
# (40, 30) is invalid as a whole and skipped, as in a sweep.
GRID = {"fast": [5, 10, 40], "slow": [30, 60]}
CONFIG = EngineConfig(fee_bps=5)
WARMUP = 60  # the slowest SMA: the window's first target is already decided


def bounds(*folds: tuple[range, range]) -> tuple[FoldBounds, ...]:
    return tuple(FoldBounds(i, ins, oos) for i, (ins, oos) in enumerate(folds))


# ---- layouts -----------------------------------------------------------------------------


def test_rolling_layout_by_hand() -> None:
    # 20 bars, 3 folds, 6 IS, 4 OOS: the OOS windows are the last 12 bars; bars 0-1 unused.
    assert FoldLayout(3, 6, 4).folds(20) == bounds(
        (range(2, 8), range(8, 12)),
        (range(6, 12), range(12, 16)),
        (range(10, 16), range(16, 20)),
    )
    # Exactly enough bars: the first IS starts at bar 0.
    assert FoldLayout(2, 5, 3).folds(11) == bounds(
        (range(0, 5), range(5, 8)),
        (range(3, 8), range(8, 11)),
    )


def test_anchored_layout_by_hand() -> None:
    assert FoldLayout(3, 6, 4, WindowMode.ANCHORED).folds(20) == bounds(
        (range(0, 8), range(8, 12)),
        (range(0, 12), range(12, 16)),
        (range(0, 16), range(16, 20)),
    )
    assert FoldLayout(2, 5, 3, "anchored").folds(11) == bounds(  # type: ignore[arg-type]
        (range(0, 5), range(5, 8)),
        (range(0, 8), range(8, 11)),
    )


def test_from_ratio_fills_the_bars() -> None:
    # OOS = 20 // (3 + 1) = 5, IS the remaining 5.
    layout = FoldLayout.from_ratio(20, 3, 1.0, WindowMode.ANCHORED)
    assert layout == FoldLayout(3, 5, 5, WindowMode.ANCHORED)
    assert layout.folds(20) == bounds(
        (range(0, 5), range(5, 10)),
        (range(0, 10), range(10, 15)),
        (range(0, 15), range(15, 20)),
    )
    # OOS = floor(4320 / 5.5) = 785; IS = 4320 - 3 * 785 = 1965 (~2.5 x 785).
    assert FoldLayout.from_ratio(4320, 3, 2.5) == FoldLayout(3, 1965, 785)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 6, 4), "n_folds must be an int >= 1"),
        ((3, 1, 4), "in_sample_bars must be an int >= 2"),
        ((3, 6, 0), "out_of_sample_bars must be an int >= 2"),
        ((3, 6, 4.0), "out_of_sample_bars must be an int"),
        ((True, 6, 4), "n_folds must be an int"),
        ((3, 6, 4, "sideways"), "mode must be one of"),
    ],
)
def test_bad_layouts_raise(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        FoldLayout(*args)  # type: ignore[arg-type]


def test_too_few_bars_raise() -> None:
    with pytest.raises(InvalidConfigError, match=r"too few bars: .* need 18, got 17"):
        FoldLayout(3, 6, 4).folds(17)
    with pytest.raises(InvalidConfigError, match="too few bars"):
        FoldLayout.from_ratio(9, 4, 1.0)
    with pytest.raises(InvalidConfigError, match="in_sample_ratio must be > 0"):
        FoldLayout.from_ratio(100, 4, 0.0)


# ---- walk-forward on real bars -----------------------------------------------------------

LAYOUT = FoldLayout(3, 1200, 600)
CASES = {
    "rolling-sharpe-warmup0": (LAYOUT, "sharpe", 0),
    "anchored-drawdown-warmup60": (
        replace(LAYOUT, mode=WindowMode.ANCHORED),
        "max_drawdown",
        WARMUP,
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def report(request: pytest.FixtureRequest, q4_bars: Bars) -> WalkForwardReport:
    layout, rank_by, warmup = CASES[request.param]
    return walk_forward(q4_bars, STRATEGY, GRID, layout, CONFIG, rank_by, warmup_bars=warmup)


def assert_same_metrics(a: Metrics, b: Metrics) -> None:
    np.testing.assert_equal(astuple(a), astuple(b))  # NaN equals NaN here


def assert_same_trades(a: TradeLog, b: TradeLog) -> None:
    np.testing.assert_equal(astuple(a), astuple(b))


def assert_same_run(a: BacktestResult, b: BacktestResult) -> None:
    np.testing.assert_array_equal(a.equity, b.equity)
    np.testing.assert_array_equal(a.side, b.side)
    np.testing.assert_array_equal(a.open_time_ms, b.open_time_ms)
    assert_same_trades(a.trades, b.trades)
    assert_same_metrics(a.metrics, b.metrics)


def argmax_by_loop(bars: Bars, rank_by: str, config: EngineConfig) -> tuple[dict[str, int], float]:
    """The grid's winner by our own loop: first strictly best, NaN never, in grid order."""
    lower_is_better = rank_by == "max_drawdown"
    best: tuple[dict[str, int], float] | None = None
    for fast, slow in itertools.product(GRID["fast"], GRID["slow"]):
        if fast >= slow:
            continue
        params = {"fast": fast, "slow": slow}
        value = float(getattr(run_strategy(bars, STRATEGY, params, config).metrics, rank_by))
        if math.isnan(value):
            continue
        better = best is None or (value < best[1] if lower_is_better else value > best[1])
        if better:
            best = (params, value)
    assert best is not None
    return best


def test_report_shape(report: WalkForwardReport, q4_bars: Bars) -> None:
    assert len(report.folds) == 3
    assert report.config.bars_per_year == pytest.approx(525_600)
    assert [s.params for s in report.skipped] == [{"fast": 40, "slow": 30}]
    layout = report.layout.folds(len(q4_bars))
    for fold, expected in zip(report.folds, layout, strict=True):
        assert fold.index == expected.index
        assert range(fold.in_sample.start, fold.in_sample.stop) == expected.in_sample
        assert range(fold.out_of_sample.start, fold.out_of_sample.stop) == expected.out_of_sample
        times = q4_bars.open_time_ms
        assert fold.out_of_sample.first_open_ms == times[fold.out_of_sample.start]
        assert fold.out_of_sample.last_open_ms == times[fold.out_of_sample.stop - 1]
        assert fold.in_sample.first_open_ms == times[fold.in_sample.start]
        assert fold.in_sample.last_open_ms == times[fold.in_sample.stop - 1]


def test_chosen_params_are_the_in_sample_argmax(report: WalkForwardReport, q4_bars: Bars) -> None:
    for fold in report.folds:
        ins = q4_bars.slice(fold.in_sample.start, fold.in_sample.stop)
        params, value = argmax_by_loop(ins, report.rank_by, report.config)
        assert fold.params == params
        assert getattr(fold.in_sample_metrics, report.rank_by) == value
        assert_same_metrics(
            fold.in_sample_metrics, run_strategy(ins, STRATEGY, params, report.config).metrics
        )


def test_whole_period_is_the_argmax_over_all_bars(report: WalkForwardReport, q4_bars: Bars) -> None:
    params, _ = argmax_by_loop(q4_bars, report.rank_by, report.config)
    whole = report.whole_period
    assert (whole.window.start, whole.window.stop) == (0, len(q4_bars))
    assert whole.params == params
    single = run_strategy(q4_bars, STRATEGY, params, report.config)
    assert_same_metrics(whole.metrics, single.metrics)


def test_each_oos_window_is_one_single_backtest(report: WalkForwardReport, q4_bars: Bars) -> None:
    spec = get_strategy(STRATEGY)
    k = report.warmup_bars
    for fold in report.folds:
        start, stop = fold.out_of_sample.start, fold.out_of_sample.stop
        window = q4_bars.slice(start, stop)
        if k == 0:
            single = run_strategy(window, STRATEGY, fold.params, report.config)
        else:
            targets = spec.signal(q4_bars.slice(start - k, stop), spec.parse(fold.params))
            single = run_backtest(window, targets[k:], report.config)
            # Warmed up: the window holds a position from its second bar (the first fill).
            assert fold.out_of_sample_result.side[1] != 0
        assert_same_run(fold.out_of_sample_result, single)
        assert_same_metrics(fold.out_of_sample_metrics, single.metrics)


def test_without_warmup_the_window_starts_flat(q4_bars: Bars) -> None:
    wf = walk_forward(q4_bars, STRATEGY, {"fast": [5], "slow": [60]}, LAYOUT, CONFIG)
    for fold in wf.folds:
        # SMA(60) exists from the window's 60th bar; its target fills one bar later.
        assert not fold.out_of_sample_result.side[:60].any()


def test_stitched_curve_is_continuous(report: WalkForwardReport) -> None:
    stitched, capital = report.stitched, report.config.initial_capital
    assert stitched.scale[0] == 1.0
    assert stitched.fold_start == (0, 600, 1200)
    level = capital
    for fold, scale, start in zip(report.folds, stitched.scale, stitched.fold_start, strict=True):
        own = fold.out_of_sample_result
        segment = stitched.equity[start : start + len(own.equity)]
        # Each fold starts where the previous one ended: scaled by end / capital.
        assert scale == level / capital
        np.testing.assert_array_equal(segment, own.equity * scale)
        np.testing.assert_array_equal(
            stitched.open_time_ms[start : start + len(own.equity)], own.open_time_ms
        )
        level = float(segment[-1])
    assert stitched.equity[-1] == level
    assert np.all(np.diff(stitched.open_time_ms) > 0)


def test_scaling_equals_starting_from_the_previous_end(
    report: WalkForwardReport, q4_bars: Bars
) -> None:
    stitched = report.stitched
    bar_offset = 0
    trade_start = 0
    for fold, start in zip(report.folds, stitched.fold_start, strict=True):
        begin = stitched.equity[start - 1] if start else report.config.initial_capital
        config = replace(report.config, initial_capital=float(begin))
        window = q4_bars.slice(fold.out_of_sample.start, fold.out_of_sample.stop)
        spec, k = get_strategy(STRATEGY), report.warmup_bars
        targets = spec.signal(
            q4_bars.slice(fold.out_of_sample.start - k, fold.out_of_sample.stop),
            spec.parse(fold.params),
        )
        direct = run_backtest(window, targets[k:], config)
        n = len(direct.equity)
        np.testing.assert_allclose(stitched.equity[start : start + n], direct.equity, rtol=1e-9)
        trades = slice(trade_start, trade_start + len(direct.trades))
        for name in ("size", "pnl", "fees"):
            np.testing.assert_allclose(
                getattr(stitched.trades, name)[trades],
                getattr(direct.trades, name),
                rtol=1e-9,
                atol=1e-9 * begin,
            )
        np.testing.assert_array_equal(
            stitched.trades.entry_bar[trades], direct.trades.entry_bar + bar_offset
        )
        np.testing.assert_allclose(
            stitched.trades.return_[trades], direct.trades.return_, rtol=1e-9
        )
        bar_offset += n
        trade_start += len(direct.trades)
    assert trade_start == len(stitched.trades)


def test_stitched_metrics_compound_the_folds(report: WalkForwardReport) -> None:
    m, folds = report.stitched.metrics, report.folds
    assert m.n_trades == sum(f.out_of_sample_metrics.n_trades for f in folds)
    growth = math.prod(1 + f.out_of_sample_metrics.total_return for f in folds)
    assert m.total_return == pytest.approx(growth - 1, rel=1e-9)
    exposed = sum(f.out_of_sample_metrics.exposure * 600 for f in folds)
    assert m.exposure == pytest.approx(exposed / 1800, rel=1e-12)
    assert m.final_equity == report.stitched.equity[-1]
    assert m.max_drawdown >= max(f.out_of_sample_metrics.max_drawdown for f in folds)


def test_one_fold_stitches_to_itself(q4_bars: Bars) -> None:
    wf = walk_forward(q4_bars, STRATEGY, GRID, FoldLayout(1, 2000, 1000), CONFIG)
    (fold,) = wf.folds
    np.testing.assert_array_equal(wf.stitched.equity, fold.out_of_sample_result.equity)
    assert_same_trades(wf.stitched.trades, fold.out_of_sample_result.trades)
    assert_same_metrics(wf.stitched.metrics, fold.out_of_sample_metrics)


def test_a_bust_account_stays_flat() -> None:
    # Short at 100, the price triples: the fold ends at -10,000 and the account is done.
    bust = run_backtest(make_bars([100, 100, 300, 300]), [-1, -1, -1, -1])
    assert bust.equity[-1] == pytest.approx(-10_000)
    later = run_backtest(make_bars([100, 110, 120]).shift_time(4 * MINUTE_MS), [1, 1, 1])
    stitched = stitch([bust, later], EngineConfig())
    assert stitched.scale == (1.0, 0.0)
    np.testing.assert_array_equal(stitched.equity[4:], [bust.equity[-1]] * 3)
    assert stitched.metrics.n_trades == 1
    assert stitched.metrics.exposure == pytest.approx(3 / 7)


# ---- executor, progress, cancellation ----------------------------------------------------

SMALL = FoldLayout(3, 300, 200)
SMALL_GRID = {"fast": [5, 10], "slow": [30]}


def test_run_plan_and_progress_hooks(q4_bars: Bars) -> None:
    bars = q4_bars.slice(0, 1000)
    plans: list[int] = []
    calls: list[tuple[int, int]] = []

    def run_plan(plan: SweepPlan) -> Sequence[Metrics]:
        plans.append(len(plan.job.bars))
        return run_serially(plan)

    wf = walk_forward(
        bars, STRATEGY, SMALL_GRID, SMALL, run_plan=run_plan, on_progress=lambda *a: calls.append(a)
    )
    # The whole-period sweep first, then one in-sample sweep per fold.
    assert plans == [1000, 300, 300, 300]
    assert calls == [(1, 3), (2, 3), (3, 3)]
    serial = walk_forward(bars, STRATEGY, SMALL_GRID, SMALL)
    assert [f.params for f in wf.folds] == [f.params for f in serial.folds]
    np.testing.assert_array_equal(wf.stitched.equity, serial.stitched.equity)


def test_a_raising_progress_callback_cancels(q4_bars: Bars) -> None:
    plans: list[SweepPlan] = []

    class CancelledError(Exception):
        pass

    def cancel_after_first(done: int, total: int) -> None:
        raise CancelledError

    def run_plan(plan: SweepPlan) -> Sequence[Metrics]:
        plans.append(plan)
        return run_serially(plan)

    with pytest.raises(CancelledError):
        walk_forward(
            q4_bars.slice(0, 1000),
            STRATEGY,
            SMALL_GRID,
            SMALL,
            run_plan=run_plan,
            on_progress=cancel_after_first,
        )
    assert len(plans) == 2  # whole period and fold 0; folds 1 and 2 never ran


# ---- configs that must fail --------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "kwargs", "message"),
    [
        (GRID, {"rank_by": "luck"}, "rank_by must be one of"),
        (GRID, {"warmup_bars": -1}, "warmup_bars must be an int >= 0"),
        (GRID, {"warmup_bars": 401}, r"warmup_bars \(401\) must not exceed the 400 bars"),
        ({"fast": [40], "slow": [30]}, {}, "no valid combination"),
    ],
)
def test_bad_runs_raise(
    q4_bars: Bars, grid: dict[str, list[object]], kwargs: dict[str, object], message: str
) -> None:
    bars = q4_bars.slice(0, 1000)
    with pytest.raises(InvalidConfigError, match=message):
        walk_forward(bars, STRATEGY, grid, SMALL, **kwargs)  # type: ignore[arg-type]


def test_bad_grid_values_raise_as_in_a_sweep(q4_bars: Bars) -> None:
    with pytest.raises(InvalidParameterError):
        walk_forward(q4_bars.slice(0, 1000), STRATEGY, {"fast": [0]}, SMALL)


def test_too_few_bars_for_the_layout_raise(q4_bars: Bars) -> None:
    with pytest.raises(InvalidConfigError, match="too few bars"):
        walk_forward(q4_bars.slice(0, 899), STRATEGY, SMALL_GRID, SMALL)


def test_nan_never_wins_and_all_nan_raises(q4_bars: Bars) -> None:
    bars = q4_bars.slice(0, 1000)
    # RSI is never below 0 nor above 100: (0, 100) never trades, so its win rate is NaN.
    grid = {"lower": [0.0, 30.0], "upper": [70.0, 100.0]}
    wf = walk_forward(bars, "rsi_mean_reversion", grid, SMALL, rank_by="win_rate")
    chosen = [(f.params, f.in_sample_metrics) for f in wf.folds]
    chosen.append((wf.whole_period.params, wf.whole_period.metrics))
    for params, metrics in chosen:
        assert params != {"period": 14, "lower": 0.0, "upper": 100.0}
        assert not math.isnan(metrics.win_rate)
    with pytest.raises(InvalidConfigError, match="win_rate is NaN for every combination"):
        walk_forward(
            bars,
            "rsi_mean_reversion",
            {"lower": [0.0], "upper": [100.0]},
            SMALL,
            rank_by="win_rate",
        )

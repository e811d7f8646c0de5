"""The sweep kernel against single backtests, on real BTCUSDT 1m bars.

Every combination's metrics must be those of ``run_strategy`` exactly, for random grids of
every built-in under random engine configs; the running statistics must not depend on how a
curve is cut into tiles, and must agree with plain numpy formulas of the same figures.
"""

import math
from dataclasses import astuple, replace
from datetime import date

import numpy as np
import numpy.typing as npt
import pytest

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig, PositionMode, run_backtest, run_strategy
from finplat.backtest.domain.metrics import (
    BLOCK,
    E_COUNT,
    Metrics,
    add_equity,
    equity_accumulator,
    max_drawdown,
    metrics_from,
    trade_accumulator,
)
from finplat.backtest.domain.simulation import advance, new_state, trade_buffers
from finplat.backtest.domain.strategies import REGISTRY, Indicators, Params, get_strategy
from finplat.backtest.domain.strategies.registry import BUILT_IN
from finplat.backtest.domain.sweep_kernel import TILE_BARS, score_chunk
from tests.unit.backtest.conftest import btc_1m

SEED = 20261207
# Every built-in: the same names as the registry's built-ins (checked below).
# Values drawn for each built-in's parameters; combos that fail its check are dropped.
AXES: dict[str, dict[str, list[int] | list[float]]] = {
    "sma_crossover": {"fast": list(range(1, 60)), "slow": list(range(2, 400))},
    "ema_crossover": {"fast": list(range(2, 40)), "slow": list(range(3, 200))},
    "macd_signal_cross": {
        "fast": list(range(2, 30)),
        "slow": list(range(3, 80)),
        "signal": list(range(1, 30)),
    },
    "rsi_mean_reversion": {
        "period": list(range(2, 60)),
        "lower": [10.0, 20.0, 25.0, 30.0, 35.0, 45.0],
        "upper": [55.0, 65.0, 70.0, 75.0, 80.0, 90.0],
    },
    "bollinger_mean_reversion": {
        "period": list(range(2, 120)),
        "nbdev": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
    },
}


def test_the_grids_cover_every_builtin() -> None:
    assert sorted(AXES) == sorted(
        entry.spec.name for entry in REGISTRY.entries() if entry.source == BUILT_IN
    )


@pytest.fixture(scope="module")
def bars() -> Bars:
    """A week of real 1m bars: 10,080 bars, three tiles, the last one partial."""
    return btc_1m(date(2024, 11, 1), date(2024, 11, 7))


def random_combos(strategy: str, rng: np.random.Generator, count: int) -> list[Params]:
    spec = get_strategy(strategy)
    combos: list[Params] = []
    while len(combos) < count:
        raw = {name: values[rng.integers(len(values))] for name, values in AXES[strategy].items()}
        try:
            combos.append(spec.parse(raw))
        except ValueError:
            continue
    return combos


def random_config(rng: np.random.Generator) -> EngineConfig:
    stops = rng.random() < 0.5
    return EngineConfig(
        initial_capital=float(rng.choice([1_000.0, 10_000.0, 250_000.0])),
        fee_bps=float(rng.choice([0.0, 1.0, 7.5])),
        slippage_bps=float(rng.choice([0.0, 2.0])),
        mode=PositionMode.LONG_ONLY if rng.random() < 0.3 else PositionMode.LONG_SHORT,
        fraction=float(rng.choice([1.0, 0.5])),
        stop_loss=float(rng.choice([0.002, 0.01])) if stops else None,
        take_profit=float(rng.choice([0.004, 0.02])) if stops and rng.random() < 0.5 else None,
    )


def assert_same(kernel: list[Metrics], singles: list[Metrics]) -> None:
    assert len(kernel) == len(singles)
    for got, want in zip(kernel, singles, strict=True):
        np.testing.assert_equal(astuple(got), astuple(want))  # NaN equals NaN here


@pytest.mark.parametrize("strategy", list(AXES))
def test_every_builtin_equals_single_runs_on_random_grids(bars: Bars, strategy: str) -> None:
    rng = np.random.default_rng([SEED, list(AXES).index(strategy)])
    for _ in range(3):
        config = random_config(rng)
        combos = random_combos(strategy, rng, 6)
        kernel = score_chunk(bars, strategy, combos, config, Indicators(bars))
        singles = [run_strategy(bars, strategy, p, config).metrics for p in combos]
        assert_same(kernel, singles)


def test_mean_crossover_periods_whose_cross_products_pass_int64(bars: Bars) -> None:
    # BTC near 9e4 is 9e12 units of 1e-8; a 1,000- and a 2,000-bar sum times the other
    # period pass 2**63, so the side is decided by whole parts and remainders.
    combos = [get_strategy("sma_crossover").parse({"fast": f, "slow": s}) for f, s in
              [(1000, 2000), (1500, 4000), (3, 7)]]  # fmt: skip
    sums = Indicators(bars).fixed_point_sums
    assert sums is not None
    assert sums.largest * 1000 * 2000 >= 2**63
    config = EngineConfig(fee_bps=4.0)
    kernel = score_chunk(bars, "sma_crossover", combos, config, Indicators(bars))
    assert_same(kernel, [run_strategy(bars, "sma_crossover", p, config).metrics for p in combos])


def test_closes_that_are_not_8_decimal_prices_take_the_float_path(bars: Bars) -> None:
    nudged = replace(bars, close=bars.close * (1.0 + 1e-12))
    assert Indicators(nudged).fixed_point_sums is None
    combos = random_combos("sma_crossover", np.random.default_rng(SEED), 4)
    config = EngineConfig()
    kernel = score_chunk(nudged, "sma_crossover", combos, config, Indicators(nudged))
    assert_same(kernel, [run_strategy(nudged, "sma_crossover", p, config).metrics for p in combos])


def _real_curve(bars: Bars) -> npt.NDArray[np.float64]:
    return run_strategy(bars, "sma_crossover", {"fast": 5, "slow": 40}).equity


def test_equity_statistics_do_not_depend_on_how_the_curve_is_cut(bars: Bars) -> None:
    curve = _real_curve(bars)
    whole = equity_accumulator(10_000.0)
    add_equity(whole, curve)
    rng = np.random.default_rng(SEED)
    for _ in range(5):
        blocks = rng.choice(np.arange(1, len(curve) // BLOCK + 1), size=3, replace=False)
        pieces = equity_accumulator(10_000.0)
        for piece in np.split(curve, np.sort(blocks) * BLOCK):
            add_equity(pieces, piece)
        np.testing.assert_array_equal(pieces, whole)
    tiles = equity_accumulator(10_000.0)
    for start in range(0, len(curve), TILE_BARS):
        add_equity(tiles, curve[start : start + TILE_BARS])
    np.testing.assert_array_equal(tiles, whole)
    assert whole[E_COUNT] == len(curve)


def test_a_piece_of_a_curve_off_the_blocks_is_refused(bars: Bars) -> None:
    acc = equity_accumulator(10_000.0)
    add_equity(acc, _real_curve(bars)[: BLOCK + 1])
    with pytest.raises(ValueError, match="multiple of BLOCK"):
        add_equity(acc, _real_curve(bars)[BLOCK + 1 :])


def test_equity_statistics_equal_the_numpy_formulas(bars: Bars) -> None:
    capital = 10_000.0
    curve = _real_curve(bars)
    acc = equity_accumulator(capital)
    add_equity(acc, curve)
    metrics = metrics_from(acc, trade_accumulator(), capital, 0, 525_600.0)
    returns = curve / np.concatenate(([capital], curve[:-1])) - 1.0
    peaks = np.maximum.accumulate(np.concatenate(([capital], curve)))[1:]
    drawdowns = 1.0 - curve / peaks
    assert max_drawdown(acc) == drawdowns.max()  # a peak's trough gives its deepest, exactly
    under = np.concatenate(([0], (curve < peaks).astype(int), [0]))
    edges = np.flatnonzero(np.diff(under))
    assert metrics.max_drawdown_duration_bars == (edges[1::2] - edges[::2]).max()
    root = math.sqrt(525_600.0)
    assert metrics.annual_volatility == pytest.approx(returns.std(ddof=1) * root, rel=1e-12)
    assert metrics.sharpe == pytest.approx(returns.mean() / returns.std(ddof=1) * root, rel=1e-10)
    downside = math.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))
    assert metrics.sortino == pytest.approx(returns.mean() / downside * root, rel=1e-10)


def _plateau_curve(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Equity as a strategy makes it: moves while in a position, flat in cash, sometimes
    flat exactly at its running peak and sometimes back exactly to it after a drawdown."""
    parts: list[npt.NDArray[np.float64]] = []
    level = peak = 10_000.0
    while sum(len(p) for p in parts) < 3 * TILE_BARS:
        length = int(rng.integers(1, 300))
        kind = rng.integers(4)
        moves: npt.NDArray[np.float64]
        if kind == 0:  # in a position
            moves = level * np.cumprod(1.0 + rng.normal(0.0, 1e-3, length), dtype=np.float64)
        elif kind == 1:  # in cash, wherever the last trade left it
            moves = np.full(length, level)
        elif kind == 2:  # back to the peak and flat there
            moves = np.full(length, peak)
        else:  # a new peak, then flat
            moves = np.full(length, peak * (1.0 + rng.uniform(0.0, 1e-2)))
        parts.append(moves)
        level, peak = float(moves[-1]), max(peak, float(moves.max()))
    return np.concatenate(parts)


def _aligned_curve() -> npt.NDArray[np.float64]:
    """The longest drawdown ends exactly where a run of 64 bars flat at the peak starts."""
    return np.concatenate(
        (np.full(64, 10_000.0), np.full(320, 9_000.0), np.full(64, 10_000.0),
         np.full(100, 9_500.0), np.full(64, 11_000.0))
    )  # fmt: skip


def _below_zero_curve() -> npt.NDArray[np.float64]:
    """A short can lose more than the equity: blocks wholly under the peak whose bars are
    negative floats, whose bits do not order as the floats do, and -0.0."""
    return np.concatenate(
        (np.full(64, 10_000.0), np.linspace(9_000.0, -3_000.0, 3 * BLOCK),
         np.full(BLOCK, -0.0), np.linspace(-2_000.0, 12_000.0, 2 * BLOCK))
    )  # fmt: skip


def test_drawdowns_of_plateaus_returns_to_the_peak_and_losses_below_zero_equal_numpy() -> None:
    rng = np.random.default_rng(SEED)
    curves = [_aligned_curve(), _below_zero_curve(), *(_plateau_curve(rng) for _ in range(20))]
    for curve in curves:
        acc = equity_accumulator(10_000.0)
        for start in range(0, len(curve), TILE_BARS):
            add_equity(acc, curve[start : start + TILE_BARS])
        metrics = metrics_from(acc, trade_accumulator(), 10_000.0, 0, 525_600.0)
        peaks = np.maximum.accumulate(np.concatenate(([10_000.0], curve)))[1:]
        under = np.concatenate(([0], (curve < peaks).astype(int), [0]))
        edges = np.flatnonzero(np.diff(under))
        assert max_drawdown(acc) == (1.0 - curve / peaks).max()
        assert metrics.max_drawdown_duration_bars == (edges[1::2] - edges[::2]).max(initial=0)


def test_a_backtest_of_the_kernel_targets_is_the_same_backtest(bars: Bars) -> None:
    # The kernel runs the SMA crossover without materialising its targets; the targets the
    # strategy gives, backtested, are the same figures.
    params = get_strategy("sma_crossover").parse({"fast": 7, "slow": 90})
    config = EngineConfig(fee_bps=2.0, stop_loss=0.01)
    (kernel,) = score_chunk(bars, "sma_crossover", [params], config, Indicators(bars))
    targets = get_strategy("sma_crossover").signal(bars, params)
    np.testing.assert_equal(astuple(kernel), astuple(run_backtest(bars, targets, config).metrics))


def test_a_memo_over_its_budget_lets_series_go_and_results_stay(bars: Bars) -> None:
    series_bytes = len(bars) * 8
    memo = Indicators(bars, budget=3 * series_bytes)
    combos = random_combos("ema_crossover", np.random.default_rng(SEED), 12)
    config = EngineConfig(fee_bps=3.0)
    kernel = []
    for params in combos:  # one at a time, as a sweep's chunks go, looking at the memo after each
        kernel += score_chunk(bars, "ema_crossover", [params], config, memo)
        assert memo.kept_bytes <= 3 * series_bytes
    assert_same(kernel, [run_strategy(bars, "ema_crossover", p, config).metrics for p in combos])
    assert memo.kept_bytes == 3 * series_bytes  # full: 12 combos use more than 3 EMAs


def _simulate(target: npt.NDArray[np.int8], stop_loss: float) -> list[npt.NDArray[np.generic]]:
    """Everything ``advance`` writes for ``target`` on a random walk of bars."""
    rng = np.random.default_rng(SEED)
    n = target.shape[0]
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high, low = np.maximum(open_, close) * 1.002, np.minimum(open_, close) * 0.998
    floats, ints = new_state(10_000.0)
    equity, side = np.empty(n), np.empty(n, np.int8)
    ti, tf = trade_buffers(2 * n + 1)
    k = advance(
        open_, high, low, close, target, 0, floats, ints, 0.001, 0.0005, 1.0, stop_loss, 0.0,
        equity, side, ti, tf,
    )  # fmt: skip
    return [equity, side, ti[:k], tf[:k], floats, ints]


@pytest.mark.parametrize("n", [1, 2, 31, 32, 33, 64, 65, 200, 1_000, 5_000])
def test_runs_of_repeated_targets_are_the_bars_one_by_one(n: int) -> None:
    # Without stops the simulation skips a run of repeated targets a block of bars at a time;
    # with a stop that never triggers (a loss of 1e9 of the entry price) it takes each bar
    # one by one. Same equity, sides, trades and state, for runs of every length, ending
    # anywhere in a block or at the last bar.
    rng = np.random.default_rng(SEED + n)
    for mean_run in (1.5, 5.0, 40.0, 400.0) * 5:
        lengths = rng.geometric(1.0 / mean_run, n)
        target = np.repeat(rng.integers(-1, 2, n), lengths)[:n].astype(np.int8)
        skipping, one_by_one = _simulate(target, 0.0), _simulate(target, 1e9)
        for got, want in zip(skipping, one_by_one, strict=True):
            assert got.dtype == want.dtype
            assert got.tobytes() == want.tobytes()

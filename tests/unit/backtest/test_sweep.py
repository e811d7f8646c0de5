"""Parameter sweeps: grid validation, skipping, ranking, and identical results on every backend."""

import math
from dataclasses import fields
from typing import Any

import numpy as np
import pytest

from finplat.backtest.adapters.sweep_executor import run_sweep
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig, run_strategy
from finplat.backtest.domain.errors import InvalidConfigError, InvalidParameterError
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.strategies import Params
from finplat.backtest.domain.sweep import SKIPPED_EXAMPLES, Ranking, expand_grid

GRID = {"fast": [5, 10, 20], "slow": [10, 30]}


def test_grid_skips_inconsistent_combos_with_a_reason() -> None:
    grid = expand_grid("sma_crossover", GRID)
    valid, skipped = grid.combos, grid.skipped
    assert [p.as_dict() for p in valid] == [
        {"fast": 5, "slow": 10},
        {"fast": 5, "slow": 30},
        {"fast": 10, "slow": 30},
        {"fast": 20, "slow": 30},
    ]
    assert [(s.params, s.reason) for s in skipped] == [
        ({"fast": 10, "slow": 10}, "fast must be < slow (10)"),
        ({"fast": 20, "slow": 10}, "fast must be < slow (10)"),
    ]


def test_grid_fills_defaults_and_dedups() -> None:
    valid = expand_grid("rsi_mean_reversion", {"period": [7, 7.0, 14]}).combos
    assert [p.as_dict() for p in valid] == [
        {"period": 7, "lower": 30.0, "upper": 70.0},
        {"period": 14, "lower": 30.0, "upper": 70.0},
    ]


@pytest.mark.parametrize("grid", [{"fast": [0, 5]}, {"fast": [5.5]}, {"speed": [1]}, {"fast": []}])
def test_invalid_grid_values_raise(grid: dict[str, list[object]]) -> None:
    with pytest.raises(InvalidParameterError):
        expand_grid("sma_crossover", grid)


@pytest.fixture(scope="module")
def bars(q4_bars: Bars) -> Bars:
    return q4_bars.slice(0, 2000)


def test_results_are_ranked_and_match_single_runs(bars: Bars) -> None:
    config = EngineConfig(fee_bps=5)
    report = run_sweep(bars, "sma_crossover", GRID, config, rank_by="total_return", workers=1)
    returns = [r.metrics.total_return for r in report.results]
    assert returns == sorted(returns, reverse=True)
    assert len(report.skipped) == 2
    for r in report.results:
        single = run_strategy(bars, "sma_crossover", r.params, config)
        assert single.metrics.total_return == r.metrics.total_return
        assert single.metrics.n_trades == r.metrics.n_trades


def test_lower_is_better_metrics_rank_ascending(bars: Bars) -> None:
    report = run_sweep(bars, "sma_crossover", GRID, rank_by="max_drawdown", workers=1)
    drawdowns = [r.metrics.max_drawdown for r in report.results]
    assert drawdowns == sorted(drawdowns)


def test_nan_metrics_rank_last(bars: Bars) -> None:
    # RSI is never below 0 nor above 100: that combo never trades and its win rate is NaN.
    grid = {"lower": [0.0, 30.0], "upper": [70.0, 100.0]}
    report = run_sweep(bars, "rsi_mean_reversion", grid, rank_by="win_rate", workers=1)
    assert not math.isnan(report.results[0].metrics.win_rate)
    assert math.isnan(report.results[-1].metrics.win_rate)


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_parallel_backends_match_serial(bars: Bars, backend: str) -> None:
    grid = {"fast": [3, 5, 8], "slow": [13, 21]}
    serial = run_sweep(bars, "ema_crossover", grid, workers=1)
    parallel = run_sweep(bars, "ema_crossover", grid, workers=2, backend=backend)  # type: ignore[arg-type]
    assert [(r.params, r.metrics) for r in parallel.results] == [
        (r.params, r.metrics) for r in serial.results
    ]


def test_bad_sweep_arguments(bars: Bars) -> None:
    with pytest.raises(InvalidConfigError, match="rank_by"):
        run_sweep(bars, "sma_crossover", GRID, rank_by="luck")
    with pytest.raises(InvalidConfigError, match="workers"):
        run_sweep(bars, "sma_crossover", GRID, workers=0)


def _metrics_with(sharpe: float) -> Metrics:
    values: dict[str, Any] = {f.name: 0.0 for f in fields(Metrics)}
    return Metrics(**{**values, "sharpe": sharpe})


@pytest.mark.parametrize("top_n", [0, 1, 7, 300])
def test_ranking_keeps_the_best_top_n_whatever_order_chunks_finish_in(top_n: int) -> None:
    rng = np.random.default_rng(top_n)
    # Ties and NaNs on purpose: many values repeat, and a tenth are NaN.
    values = rng.integers(0, 20, 250).astype(float)
    values[rng.random(250) < 0.1] = math.nan
    combos = [Params("sma_crossover", {"fast": i, "slow": 1000}) for i in range(250)]
    metrics = [_metrics_with(v) for v in values]
    ranking = Ranking("sharpe", top_n)
    order = rng.permutation(range(0, 250, 25))
    for first in order:
        ranking.add(int(first), combos[first : first + 25], metrics[first : first + 25])
    # Best first: higher sharpe, then the grid order; NaN last, in grid order.
    expected = sorted(
        range(250),
        key=lambda i: (math.isnan(values[i]), 0.0 if math.isnan(values[i]) else -values[i], i),
    )
    kept = expected[:top_n] if top_n else expected
    assert [r.params["fast"] for r in ranking.best()] == kept


def test_a_million_combination_grid_keeps_its_valid_combos_and_a_few_skipped() -> None:
    grid = expand_grid("sma_crossover", {"fast": range(1, 1001), "slow": range(2, 1002)})
    # fast < slow: for fast f there are 1001 - f valid slows among 2..1001.
    assert len(grid.combos) == sum(1001 - f for f in range(1, 1001)) == 500_500
    assert grid.skipped_count == 1_000_000 - 500_500
    assert len(grid.skipped) == SKIPPED_EXAMPLES
    assert grid.skipped[0].params == {"fast": 2, "slow": 2}

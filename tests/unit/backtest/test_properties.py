"""Property tests: no look-ahead, fees monotone, a zero signal leaves equity flat."""

from collections.abc import Callable
from dataclasses import astuple, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from finplat.backtest.domain import indicators as ind
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import (
    BacktestResult,
    EngineConfig,
    PositionMode,
    run_backtest,
    run_strategy,
)
from finplat.backtest.domain.strategies import REGISTRY

Arr = npt.NDArray[np.float64]
PROPERTY = settings(max_examples=60, deadline=None)
# Per-bar moves of at most 0.5 % over at most 120 bars keep every price within 0.55x..1.8x,
# so even a fully sized short never loses more than its equity (fees stay monotone).
MOVE = 0.005


def bars_from(moves: Arr, gaps: Arr, wicks: Arr) -> Bars:
    close = np.asarray(100.0 * np.cumprod(1.0 + moves), dtype=np.float64)
    open_ = np.concatenate(([100.0], close[:-1])) * (1.0 + gaps)
    high = np.maximum(open_, close) * (1.0 + wicks)
    low = np.minimum(open_, close) * (1.0 - wicks)
    times = np.arange(close.shape[0], dtype=np.int64) * 60_000
    volume = np.asarray(1.0 + wicks * 1000, dtype=np.float64)
    return Bars(times, open_, high, low, close, volume)


@st.composite
def bar_series(draw: st.DrawFn, n: int) -> Bars:
    def series(lo: float, hi: float) -> Arr:
        values: Arr = draw(arrays(np.float64, n, elements=st.floats(lo, hi)))
        return values

    return bars_from(series(-MOVE, MOVE), series(-MOVE / 5, MOVE / 5), series(0.0, MOVE))


@dataclass(frozen=True)
class Case:
    bars: Bars
    altered: Bars  # same bars up to and including bar k, anything after
    k: int


@st.composite
def look_ahead_cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(5, 120))
    k = draw(st.integers(0, n - 2))
    bars = draw(bar_series(n))
    other = draw(bar_series(n))
    altered = Bars(
        bars.open_time_ms,
        *(np.concatenate((getattr(bars, f)[: k + 1], getattr(other, f)[k + 1 :]))
          for f in ("open", "high", "low", "close", "volume")),
    )  # fmt: skip
    return Case(bars, altered, k)


configs = st.builds(
    EngineConfig,
    fee_bps=st.floats(0, 50),
    slippage_bps=st.floats(0, 20),
    mode=st.sampled_from(list(PositionMode)),
    fraction=st.floats(0.1, 1.0),
    stop_loss=st.none() | st.floats(0.001, 0.05),
    take_profit=st.none() | st.floats(0.001, 0.05),
    bars_per_year=st.just(525_600.0),
)
targets = st.lists(st.sampled_from([-1, 0, 1]), min_size=120, max_size=120)


def closed_by(res: BacktestResult, k: int) -> list[Any]:
    return [t for t in res.trades.records() if t.exit_bar <= k]


@PROPERTY
@given(case=look_ahead_cases(), config=configs, target=targets, new_target=targets)
def test_engine_has_no_look_ahead(
    case: Case, config: EngineConfig, target: list[int], new_target: list[int]
) -> None:
    # Through bar k, only bars 0..k and the targets decided before bar k (0..k-1) may matter:
    # the target decided at bar k's close is changed too.
    n, k = len(case.bars), case.k
    first = run_backtest(case.bars, target[:n], config)
    second = run_backtest(case.altered, target[:k] + new_target[k:n], config)
    np.testing.assert_array_equal(first.equity[: k + 1], second.equity[: k + 1])
    np.testing.assert_array_equal(first.side[: k + 1], second.side[: k + 1])
    assert closed_by(first, k) == closed_by(second, k)


@PROPERTY
@given(case=look_ahead_cases(), config=configs, name=st.sampled_from(REGISTRY.names()))
def test_strategy_backtests_have_no_look_ahead(case: Case, config: EngineConfig, name: str) -> None:
    first = run_strategy(case.bars, name, SMALL_PARAMS[name], config)
    second = run_strategy(case.altered, name, SMALL_PARAMS[name], config)
    np.testing.assert_array_equal(first.equity[: case.k + 1], second.equity[: case.k + 1])
    assert closed_by(first, case.k) == closed_by(second, case.k)


SMALL_PARAMS: dict[str, dict[str, object]] = {
    "sma_crossover": {"fast": 2, "slow": 5},
    "ema_crossover": {"fast": 2, "slow": 6},
    "rsi_mean_reversion": {"period": 3, "lower": 40, "upper": 60},
    "macd_signal_cross": {"fast": 3, "slow": 7, "signal": 3},
    "bollinger_mean_reversion": {"period": 4, "nbdev": 1.0},
}


@PROPERTY
@given(case=look_ahead_cases(), name=st.sampled_from(REGISTRY.names()))
def test_strategies_have_no_look_ahead(case: Case, name: str) -> None:
    spec = REGISTRY.get(name)
    params = spec.parse(SMALL_PARAMS[name])
    first = spec.signal(case.bars, params)
    second = spec.signal(case.altered, params)
    np.testing.assert_array_equal(first[: case.k + 1], second[: case.k + 1])
    assert set(np.unique(first).tolist()) <= {-1, 0, 1}


INDICATORS: dict[str, Callable[[Bars], tuple[Arr, ...]]] = {
    "sma": lambda b: (ind.sma(b.close, 4),),
    "ema": lambda b: (ind.ema(b.close, 4),),
    "wma": lambda b: (ind.wma(b.close, 4),),
    "rsi": lambda b: (ind.rsi(b.close, 4),),
    "macd": lambda b: astuple(ind.macd(b.close, 3, 6, 2)),
    "bbands": lambda b: (ind.bollinger_bands(b.close, 4).upper,),
    "atr": lambda b: (ind.atr(b.high, b.low, b.close, 3),),
    "stoch": lambda b: (ind.stochastic(b.high, b.low, b.close, 3, 2, 2).d,),
    "vwap": lambda b: (ind.vwap(b.open_time_ms, b.high, b.low, b.close, b.volume),),
}


@PROPERTY
@given(case=look_ahead_cases(), name=st.sampled_from(sorted(INDICATORS)))
def test_indicators_are_causal(case: Case, name: str) -> None:
    for a, b in zip(INDICATORS[name](case.bars), INDICATORS[name](case.altered), strict=True):
        np.testing.assert_array_equal(a[: case.k + 1], b[: case.k + 1])


@PROPERTY
@given(
    bars=st.integers(2, 120).flatmap(bar_series),
    config=configs,
    target=targets,
    fees=st.tuples(st.floats(0, 100), st.floats(0, 100)),
)
def test_more_fees_never_increase_final_equity(
    bars: Bars, config: EngineConfig, target: list[int], fees: tuple[float, float]
) -> None:
    low, high = sorted(fees)
    cheap = run_backtest(bars, target[: len(bars)], replace(config, fee_bps=low))
    dear = run_backtest(bars, target[: len(bars)], replace(config, fee_bps=high))
    assert dear.metrics.final_equity <= cheap.metrics.final_equity * (1 + 1e-12)
    assert dear.trades.entry_bar.tolist() == cheap.trades.entry_bar.tolist()


@PROPERTY
@given(bars=st.integers(2, 120).flatmap(bar_series), config=configs)
def test_zero_signal_leaves_equity_flat(bars: Bars, config: EngineConfig) -> None:
    res = run_backtest(bars, np.zeros(len(bars), dtype=np.int8), config)
    assert len(res.trades) == 0
    assert np.all(res.equity == config.initial_capital)
    assert res.metrics.total_return == 0.0
    assert res.metrics.exposure == 0.0

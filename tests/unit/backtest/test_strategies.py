"""Strategy registry, parameter schemas and validation, and hand-checked signals."""

import numpy as np
import numpy.typing as npt
import pytest
import talib

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.errors import (
    BacktestError,
    InvalidBarsError,
    InvalidParameterError,
    UnknownStrategyError,
)
from finplat.backtest.domain.strategies import BUILT_IN, REGISTRY, Indicators, Params, get_strategy
from tests.unit.backtest.helpers import make_bars


def hold_sign(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> list[int]:
    """Reference rule written out plainly: side of a vs b, ties/NaN keep the previous side."""
    out, state = [], 0
    for x, y in zip(a, b, strict=True):
        if x > y:
            state = 1
        elif x < y:
            state = -1
        out.append(state)
    return out


def parse_params(name: str, raw: dict[str, object] | None = None) -> Params:
    return get_strategy(name).parse(raw)


def test_registry_lists_the_five_built_in_strategies() -> None:
    built_in = [entry for entry in REGISTRY.entries() if entry.source == BUILT_IN]
    assert [entry.spec.name for entry in built_in] == [
        "bollinger_mean_reversion",
        "ema_crossover",
        "macd_signal_cross",
        "rsi_mean_reversion",
        "sma_crossover",
    ]
    for entry in built_in:
        spec = entry.spec
        assert spec.schema, spec.name
        for p in spec.schema:
            assert p.type in (int, float)
            assert p.min <= p.default <= p.max
            assert p.description


def test_unknown_strategy() -> None:
    with pytest.raises(UnknownStrategyError, match="known: bollinger_mean_reversion, ema_") as info:
        get_strategy("turtle")
    assert isinstance(info.value, BacktestError)


def test_defaults_and_frozen_params() -> None:
    params = parse_params("sma_crossover")
    assert params.as_dict() == {"fast": 10, "slow": 30}
    assert (params.fast, params["slow"]) == (10, 30)
    with pytest.raises(AttributeError, match="immutable"):
        params.fast = 3
    with pytest.raises(AttributeError, match="sma_crossover has no parameter 'speed'"):
        _ = params.speed
    assert parse_params("rsi_mean_reversion", {"lower": 25}).as_dict() == {
        "period": 14,
        "lower": 25.0,
        "upper": 70.0,
    }


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("sma_crossover", {"fast": 0}, "must be in"),
        ("sma_crossover", {"fast": 50}, "must be < slow"),
        ("sma_crossover", {"fast": 2.5}, "must be an int"),
        ("sma_crossover", {"fast": True}, "must be int"),
        ("sma_crossover", {"fast": "5"}, "must be int"),
        ("sma_crossover", {"speed": 5}, "unknown"),
        ("rsi_mean_reversion", {"lower": 80}, "must be < upper"),
        ("rsi_mean_reversion", {"upper": 101}, "must be in"),
        ("rsi_mean_reversion", {"upper": float("nan")}, "finite"),
        ("bollinger_mean_reversion", {"nbdev": 0}, "must be in"),
        ("macd_signal_cross", {"fast": 30}, "must be < slow"),
        ("ema_crossover", {"fast": 26}, "must be < slow"),
    ],
)
def test_invalid_params(name: str, raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        parse_params(name, raw)


def test_integral_float_is_accepted_for_int_param() -> None:
    assert parse_params("sma_crossover", {"fast": 5.0}).as_dict()["fast"] == 5


def test_sma_crossover_by_hand() -> None:
    bars = make_bars([1, 2, 3, 2, 1, 1, 2])
    # SMA(1) = close; SMA(2) = [nan, 1.5, 2.5, 2.5, 1.5, 1, 1.5]; the tie at index 5 holds -1.
    spec = get_strategy("sma_crossover")
    signal = spec.signal(bars, spec.parse({"fast": 1, "slow": 2}))
    assert signal.tolist() == [0, 1, 1, -1, -1, -1, 1]
    assert signal.dtype == np.int8


def test_rsi_reversion_by_hand() -> None:
    # RSI(2) (see test_rsi_by_hand): [nan, nan, 50, 83.3, 83.3, 16.7] for these closes.
    bars = make_bars([10, 11, 10, 12, 12, 9])
    spec = get_strategy("rsi_mean_reversion")
    signal = spec.signal(bars, spec.parse({"period": 2, "lower": 40, "upper": 80}))
    assert signal.tolist() == [0, 0, 0, -1, -1, 1]


def test_bollinger_reversion_by_hand() -> None:
    # Period 2, nbdev 0.5: middle = (c[t-1]+c[t])/2, half-width = |c[t]-c[t-1]|/4, so a rising
    # close is above the upper band (short), a falling one below the lower band (long), and an
    # unchanged close sits on the middle band, which exits either side.
    bars = make_bars([1, 2, 3, 3, 2, 2, 2.5])
    spec = get_strategy("bollinger_mean_reversion")
    signal = spec.signal(bars, spec.parse({"period": 2, "nbdev": 0.5}))
    assert signal.tolist() == [0, -1, -1, 0, 1, 0, -1]


def test_ema_and_macd_crossovers_follow_talib(q4_bars: Bars) -> None:
    close = q4_bars.close
    ema = get_strategy("ema_crossover")
    got = ema.signal(q4_bars, ema.parse({"fast": 8, "slow": 21}))
    assert got.tolist() == hold_sign(talib.EMA(close, 8), talib.EMA(close, 21))
    macd = get_strategy("macd_signal_cross")
    got = macd.signal(q4_bars, macd.parse({}))
    line, signal, _ = talib.MACD(close, 12, 26, 9)
    assert got.tolist() == hold_sign(line, signal)


def test_signal_rejects_foreign_params(q4_bars: Bars) -> None:
    with pytest.raises(InvalidParameterError):
        get_strategy("ema_crossover").signal(q4_bars, parse_params("sma_crossover"))


def test_indicator_memo_must_belong_to_the_bars(q4_bars: Bars) -> None:
    spec = get_strategy("sma_crossover")
    other = Indicators(q4_bars.slice(0, 100))
    with pytest.raises(InvalidBarsError):
        spec.signal(q4_bars, spec.parse({}), other)

"""Indicators agree with TA-Lib (the reference) on real BTCUSDT 1m klines.

Tolerance: ``rtol=1e-9`` on every value, and NaN warm-ups must be identical. Outputs that
cross or touch zero (MACD line/signal/histogram, stochastic at 0) cannot be compared relatively
there, so an absolute floor of 1e-9 times the series' largest magnitude is added
(e.g. ~1e-7 on a 0..100 oscillator); the observed differences are ~1e-11 absolute.
"""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
import talib
from talib._ta_lib import MA_Type

from finplat.backtest.domain import indicators as ind
from finplat.backtest.domain.bars import Bars

Arr = npt.NDArray[np.float64]
RTOL = 1e-9


def assert_matches(ours: Arr, ref: Arr) -> None:
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg="NaN warm-up differs")
    valid = ~np.isnan(ref)
    assert valid.any()
    scale = float(np.max(np.abs(ref[valid])))
    np.testing.assert_allclose(ours[valid], ref[valid], rtol=RTOL, atol=RTOL * scale)


@pytest.fixture(scope="module")
def bars(q4_bars: Bars) -> Bars:
    return q4_bars


@pytest.mark.parametrize("period", [2, 5, 10, 30, 200])
@pytest.mark.parametrize(
    ("ours", "ref"),
    [(ind.sma, talib.SMA), (ind.ema, talib.EMA), (ind.wma, talib.WMA), (ind.rsi, talib.RSI)],
    ids=["sma", "ema", "wma", "rsi"],
)
def test_close_based(
    bars: Bars, period: int, ours: Callable[[Arr, int], Arr], ref: Callable[..., Arr]
) -> None:
    assert_matches(ours(bars.close, period), ref(bars.close, timeperiod=period))


@pytest.mark.parametrize("period", [1, 5, 14, 30])
def test_atr(bars: Bars, period: int) -> None:
    ours = ind.atr(bars.high, bars.low, bars.close, period)
    assert_matches(ours, talib.ATR(bars.high, bars.low, bars.close, timeperiod=period))


def test_true_range(bars: Bars) -> None:
    ours = ind.true_range(bars.high, bars.low, bars.close)
    assert_matches(ours, talib.TRANGE(bars.high, bars.low, bars.close))


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (3, 10, 16)])
def test_macd(bars: Bars, fast: int, slow: int, signal: int) -> None:
    ours = ind.macd(bars.close, fast, slow, signal)
    line, sig, hist = talib.MACD(bars.close, fast, slow, signal)
    assert_matches(ours.line, line)
    assert_matches(ours.signal, sig)
    assert_matches(ours.histogram, hist)


def test_macd_swaps_fast_and_slow_like_talib(bars: Bars) -> None:
    ours = ind.macd(bars.close, 26, 12, 9)
    assert_matches(ours.line, talib.MACD(bars.close, 26, 12, 9)[0])


@pytest.mark.parametrize(("period", "nbdev"), [(5, 2.0), (20, 2.0), (20, 1.5), (50, 3.0)])
def test_bollinger_bands(bars: Bars, period: int, nbdev: float) -> None:
    ours = ind.bollinger_bands(bars.close, period, nbdev, nbdev)
    upper, middle, lower = talib.BBANDS(
        bars.close, timeperiod=period, nbdevup=nbdev, nbdevdn=nbdev, matype=MA_Type.SMA
    )
    assert_matches(ours.upper, upper)
    assert_matches(ours.middle, middle)
    assert_matches(ours.lower, lower)


@pytest.mark.parametrize(("fastk", "slowk", "slowd"), [(5, 3, 3), (14, 3, 5), (9, 1, 1)])
def test_stochastic(bars: Bars, fastk: int, slowk: int, slowd: int) -> None:
    ours = ind.stochastic(bars.high, bars.low, bars.close, fastk, slowk, slowd)
    k, d = talib.STOCH(
        bars.high, bars.low, bars.close,
        fastk_period=fastk, slowk_period=slowk, slowk_matype=MA_Type.SMA,
        slowd_period=slowd, slowd_matype=MA_Type.SMA,
    )  # fmt: skip
    assert_matches(ours.k, k)
    assert_matches(ours.d, d)


def test_stochastic_defaults_are_talibs(bars: Bars) -> None:
    ours = ind.stochastic(bars.high, bars.low, bars.close)
    k, d = talib.STOCH(bars.high, bars.low, bars.close)
    assert_matches(ours.k, k)
    assert_matches(ours.d, d)


def test_leading_nans_are_skipped_like_talib(bars: Bars) -> None:
    # Feeding one indicator's output (NaN warm-up) into another, as composites do.
    rsi = talib.RSI(bars.close, 14)
    assert_matches(ind.sma(rsi, 10), talib.SMA(rsi, 10))
    assert_matches(ind.ema(rsi, 10), talib.EMA(rsi, 10))


def test_short_input_is_all_nan(bars: Bars) -> None:
    short = bars.close[:5]
    assert np.isnan(ind.sma(short, 10)).all()
    assert np.isnan(ind.ema(short, 10)).all()
    assert np.isnan(ind.rsi(short, 10)).all()
    assert np.isnan(ind.macd(short).line).all()

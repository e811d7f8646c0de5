"""Volatility indicators: true range, ATR (Wilder), Bollinger Bands."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from finplat.backtest.domain.indicators._common import (
    FloatArray,
    as_float,
    as_floats,
    check_period,
    first_valid,
    nan_like,
    wilder_from,
)
from finplat.backtest.domain.indicators.moving import sma

# TA-Lib returns a zero deviation when the variance is below 1e-8 (TA_IS_ZERO_OR_NEG).
_TA_EPSILON = 1e-8


@dataclass(frozen=True, slots=True)
class BollingerBands:
    upper: FloatArray
    middle: FloatArray
    lower: FloatArray


def true_range(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> FloatArray:
    """max(high - low, |high - prev close|, |low - prev close|); NaN on the first bar."""
    h, lo, c = as_floats(high, low, close)
    out = nan_like(c)
    if c.shape[0] > 1:
        prev = c[:-1]
        out[1:] = np.maximum(
            h[1:] - lo[1:], np.maximum(np.abs(h[1:] - prev), np.abs(lo[1:] - prev))
        )
    return out


def atr(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14
) -> FloatArray:
    """ATR: the mean of the first ``period`` true ranges at bar ``period``, then Wilder."""
    period = check_period("atr", "period", period)
    tr = true_range(high, low, close)
    start = first_valid(tr)
    return wilder_from(tr, start + period - 1, period)


def bollinger_bands(
    values: npt.ArrayLike, period: int = 5, nbdev_up: float = 2.0, nbdev_dn: float = 2.0
) -> BollingerBands:
    """SMA middle band +/- ``nbdev`` population standard deviations (TA-Lib BBANDS, SMA type)."""
    x = as_float(values)
    period = check_period("bollinger_bands", "period", period)
    middle = sma(x, period)
    std = nan_like(x)
    start = first_valid(x)
    tail = x[start:]
    if tail.shape[0] >= period:
        # Windowed sums (not a running cumsum) keep the error bounded on long series;
        # centring on a constant makes E[d^2] - E[d]^2 numerically safe.
        d = tail - tail[0]
        mean_d = sliding_window_view(d, period).sum(axis=1) / period
        var = sliding_window_view(d * d, period).sum(axis=1) / period - mean_d * mean_d
        std[start + period - 1 :] = np.where(var < _TA_EPSILON, 0.0, np.sqrt(np.abs(var)))
    return BollingerBands(middle + nbdev_up * std, middle, middle - nbdev_dn * std)

"""Momentum indicators: RSI (Wilder), MACD, Stochastic — TA-Lib default conventions."""

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
    ema_from,
    first_valid,
    nan_like,
    wilder_from,
)
from finplat.backtest.domain.indicators.moving import sma

# TA-Lib treats |x| < 1e-8 as zero in RSI's denominator (TA_IS_ZERO).
_TA_EPSILON = 1e-8


@dataclass(frozen=True, slots=True)
class MACD:
    line: FloatArray
    signal: FloatArray
    histogram: FloatArray


@dataclass(frozen=True, slots=True)
class Stochastic:
    k: FloatArray
    d: FloatArray


def rsi(values: npt.ArrayLike, period: int = 14) -> FloatArray:
    """Wilder RSI: first average = mean of ``period`` changes; first value at bar ``period``."""
    x = as_float(values)
    period = check_period("rsi", "period", period)
    out = nan_like(x)
    start = first_valid(x)
    if x.shape[0] - start <= period:
        return out
    change = np.diff(x[start:])
    gain = wilder_from(np.maximum(change, 0.0), period - 1, period)
    loss = wilder_from(np.maximum(-change, 0.0), period - 1, period)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(np.abs(total) < _TA_EPSILON, 0.0, 100.0 * (gain / total))
    value[: period - 1] = np.nan
    out[start + 1 :] = value
    return out


def macd(values: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9) -> MACD:
    """MACD as TA-Lib computes it.

    Both EMAs are seeded at bar ``slow - 1`` (the fast one with the mean of the last ``fast``
    values there, not of the first ones), the signal EMA is seeded with the mean of the first
    ``signal`` MACD values, and all three outputs start at ``slow + signal - 2``. Like TA-Lib,
    ``fast > slow`` is swapped.
    """
    x = as_float(values)
    fast = check_period("macd", "fast", fast, 2)
    slow = check_period("macd", "slow", slow, 2)
    signal = check_period("macd", "signal", signal)
    if slow < fast:
        fast, slow = slow, fast
    seed = first_valid(x) + slow - 1
    line = ema_from(x, seed, fast, 2.0 / (fast + 1)) - ema_from(x, seed, slow, 2.0 / (slow + 1))
    sig = ema_from(line, seed + signal - 1, signal, 2.0 / (signal + 1))
    line[: min(seed + signal - 1, line.shape[0])] = np.nan
    return MACD(line, sig, line - sig)


def stochastic(
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    fastk: int = 5,
    slowk: int = 3,
    slowd: int = 3,
) -> Stochastic:
    """Slow stochastic (TA-Lib STOCH with SMA smoothing): %K = SMA(fast %K), %D = SMA(%K).

    Both outputs start at bar ``fastk + slowk + slowd - 3``. A flat window gives fast %K 0.
    """
    h, lo, c = as_floats(high, low, close)
    fastk = check_period("stochastic", "fastk", fastk)
    slowk = check_period("stochastic", "slowk", slowk)
    slowd = check_period("stochastic", "slowd", slowd)
    raw = nan_like(c)
    if c.shape[0] >= fastk:
        hh = sliding_window_view(h, fastk).max(axis=1)
        ll = sliding_window_view(lo, fastk).min(axis=1)
        # TA-Lib divides by (range / 100) rather than multiplying by 100 afterwards.
        scale = (hh - ll) / 100.0
        with np.errstate(invalid="ignore", divide="ignore"):
            raw[fastk - 1 :] = np.where(scale != 0.0, (c[fastk - 1 :] - ll) / scale, 0.0)
    k = sma(raw, slowk)
    d = sma(k, slowd)
    k[: min(fastk + slowk + slowd - 3, k.shape[0])] = np.nan
    return Stochastic(k, d)

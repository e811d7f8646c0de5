"""Moving averages: SMA, EMA, WMA (TA-Lib compatible warm-ups)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.indicators._common import (
    FloatArray,
    as_float,
    check_period,
    ema_from,
    first_valid,
    nan_like,
)
from finplat.backtest.domain.indicators.fixed_point import FixedPointSums


def sma(values: npt.ArrayLike, period: int) -> FloatArray:
    """Simple moving average; NaN for the first ``period - 1`` valid bars.

    Exact 8-decimal prices are averaged from exact integer sums and rounded faithfully (see
    ``fixed_point``), so that comparisons between means and prices decide ties exactly.
    Other values take a float running sum, whose rounding may turn a tie either way.
    A leading NaN block (e.g. another indicator's warm-up) is skipped, as TA-Lib's
    composite indicators do internally.
    """
    x = as_float(values)
    return sma_with_sums(x, period, FixedPointSums.of(x))


def sma_with_sums(x: FloatArray, period: int, sums: FixedPointSums | None) -> FloatArray:
    """``sma`` of ``x`` given its ``FixedPointSums`` (None when it has none), so that a caller
    averaging one series over many periods converts it once."""
    period = check_period("sma", "period", period)
    exact = None if sums is None else sums.means(period)
    return _float_sma(x, period) if exact is None else exact


def _float_sma(x: FloatArray, period: int) -> FloatArray:
    out = nan_like(x)
    start = 0 if x.shape[0] and not np.isnan(x[0]) else first_valid(x)
    tail = x[start:]
    if tail.shape[0] < period:
        return out
    # Centre on the first value so the running sum stays small; in-place steps avoid
    # page-faulting fresh 8 MB temporaries on long series.
    ref = tail[0]
    csum = np.subtract(tail, ref)
    np.cumsum(csum, out=csum)
    out[start + period - 1] = csum[period - 1]
    body = out[start + period :]
    np.subtract(csum[period:], csum[:-period], out=body)
    out[start + period - 1 :] /= period
    out[start + period - 1 :] += ref
    return out


def ema(values: npt.ArrayLike, period: int) -> FloatArray:
    """Exponential MA, alpha ``2 / (period + 1)``, seeded with the SMA of the first ``period``."""
    x = as_float(values)
    period = check_period("ema", "period", period)
    start = first_valid(x)
    return ema_from(x, start + period - 1, period, 2.0 / (period + 1))


def wma(values: npt.ArrayLike, period: int) -> FloatArray:
    """Linearly weighted MA (weight ``period`` on the newest bar)."""
    x = as_float(values)
    period = check_period("wma", "period", period)
    out = nan_like(x)
    start = first_valid(x)
    tail = x[start:]
    if tail.shape[0] < period:
        return out
    # np.convolve applies kernel[0] to the newest sample, so descending weights are wanted.
    weights = np.arange(period, 0, -1, dtype=np.float64)
    divisor = period * (period + 1) / 2.0
    out[start + period - 1 :] = np.convolve(tail, weights, mode="valid") / divisor
    return out

"""Shared helpers for indicators: validation, NaN-prefix handling, Wilder/EMA kernels."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain._jit import njit
from finplat.backtest.domain.errors import InvalidBarsError, InvalidParameterError

FloatArray = npt.NDArray[np.float64]


def as_float(values: npt.ArrayLike) -> FloatArray:
    """Contiguous float64 1-D view or copy of ``values``."""
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise InvalidBarsError(f"expected a 1-D series, got shape {arr.shape}")
    return arr


def as_floats(*values: npt.ArrayLike) -> tuple[FloatArray, ...]:
    """Several aligned series (e.g. high, low, close) of one length."""
    arrays = tuple(as_float(v) for v in values)
    if len({a.shape[0] for a in arrays}) > 1:
        raise InvalidBarsError(f"series lengths differ: {[a.shape[0] for a in arrays]}")
    return arrays


def check_period(owner: str, name: str, value: int, minimum: int = 1) -> int:
    """Validate an integer look-back length."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidParameterError(owner, name, f"must be an int, got {type(value).__name__}")
    if value < minimum:
        raise InvalidParameterError(owner, name, f"must be >= {minimum}, got {value}")
    return int(value)


def nan_like(x: FloatArray) -> FloatArray:
    return np.full(x.shape[0], np.nan, dtype=np.float64)


def first_valid(x: FloatArray) -> int:
    """Index of the first non-NaN value (``len(x)`` if none)."""
    valid = ~np.isnan(x)
    return int(np.argmax(valid)) if bool(valid.any()) else int(x.shape[0])


@njit
def ema_from(x: FloatArray, seed_end: int, period: int, k: float) -> FloatArray:
    """EMA seeded at ``seed_end`` with the mean of ``x[seed_end-period+1 : seed_end+1]``.

    This is TA-Lib's default (non-Metastock) seeding; the recursion has no vector form.
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    if seed_end >= n or seed_end - period + 1 < 0:
        return out
    total = 0.0
    for i in range(seed_end - period + 1, seed_end + 1):
        total += x[i]
    prev = total / period
    out[seed_end] = prev
    for i in range(seed_end + 1, n):
        prev = (x[i] - prev) * k + prev
        out[i] = prev
    return out


@njit
def wilder_from(x: FloatArray, seed_end: int, period: int) -> FloatArray:
    """Wilder smoothing seeded at ``seed_end`` with the simple mean of the last ``period``."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if seed_end >= n or seed_end - period + 1 < 0:
        return out
    total = 0.0
    for i in range(seed_end - period + 1, seed_end + 1):
        total += x[i]
    prev = total / period
    out[seed_end] = prev
    for i in range(seed_end + 1, n):
        # Same operation order as TA-Lib (multiply, add, divide) to stay bit-close.
        prev = (prev * (period - 1) + x[i]) / period
        out[i] = prev
    return out

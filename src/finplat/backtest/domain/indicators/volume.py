"""Volume-weighted average price."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.errors import InvalidBarsError, InvalidParameterError
from finplat.backtest.domain.indicators._common import FloatArray, as_floats

DAY_MS = 86_400_000


def vwap(
    open_time_ms: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
    session_ms: int | None = DAY_MS,
) -> FloatArray:
    """Session VWAP: cumulative typical price * volume / cumulative volume, bar close inclusive.

    Typical price is ``(high + low + close) / 3``. Sums restart at every multiple of
    ``session_ms`` since the Unix epoch (UTC days by default); ``None`` never restarts.
    NaN while a session has traded no volume yet.
    """
    times = np.asarray(open_time_ms, dtype=np.int64)
    h, lo, c, v = as_floats(high, low, close, volume)
    if times.shape != c.shape:
        raise InvalidBarsError(f"open_time_ms has shape {times.shape}, prices {c.shape}")
    if session_ms is not None and session_ms <= 0:
        raise InvalidParameterError("vwap", "session_ms", f"must be > 0, got {session_ms}")
    n = c.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.float64)
    pv = (h + lo + c) / 3.0 * v
    cum_pv = np.cumsum(pv)
    cum_v = np.cumsum(v)
    if session_ms is not None:
        session = times // session_ms
        starts = np.flatnonzero(np.concatenate(([True], session[1:] != session[:-1])))
        # Index of the session start for every bar, to subtract the sums before it.
        owner = starts[np.searchsorted(starts, np.arange(n), side="right") - 1]
        base_pv = np.where(owner > 0, cum_pv[owner - 1], 0.0)
        base_v = np.where(owner > 0, cum_v[owner - 1], 0.0)
        cum_pv = cum_pv - base_pv
        cum_v = cum_v - base_v
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cum_v > 0.0, cum_pv / cum_v, np.nan)

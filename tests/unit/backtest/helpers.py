"""Small bar builders for hand-computed tests."""

from collections.abc import Sequence

import numpy as np

from finplat.backtest.domain.bars import Bars

MINUTE_MS = 60_000


def make_bars(
    close: Sequence[float],
    open_: Sequence[float] | None = None,
    high: Sequence[float] | None = None,
    low: Sequence[float] | None = None,
) -> Bars:
    """One-minute bars; open defaults to close, high/low to max/min of open and close."""
    c = np.asarray(close, dtype=np.float64)
    o = c.copy() if open_ is None else np.asarray(open_, dtype=np.float64)
    h = np.maximum(o, c) if high is None else np.asarray(high, dtype=np.float64)
    lo = np.minimum(o, c) if low is None else np.asarray(low, dtype=np.float64)
    times = np.arange(c.shape[0], dtype=np.int64) * MINUTE_MS
    return Bars(times, o, h, lo, c, np.ones_like(c))

"""Bollinger mean reversion: enter against a band break, exit back at the middle band."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.strategies.base import (
    Indicators,
    Params,
    ParamSpec,
    Signal,
    StrategySpec,
)

SCHEMA = (
    ParamSpec("period", int, 20, 2, 10_000, "band length (bars)"),
    ParamSpec("nbdev", float, 2.0, 0.1, 10.0, "band width in standard deviations"),
)


def _last_index(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """For each bar, the index of the latest bar <= it where ``mask`` held (-1 if none)."""
    idx = np.where(mask, np.arange(mask.shape[0]), -1)
    return np.maximum.accumulate(idx)


def signal(bars: Bars, params: Params, ind: Indicators) -> Signal:
    period = int(params.period)
    upper, _, lower = ind.bollinger(period, float(params.nbdev))
    close = bars.close
    # The close against the middle band, an SMA: exact on 8-decimal closes (0 on a tie).
    side = ind.mean_side(1, period)
    # A band of zero width (TA-Lib zeroes a deviation whose variance is below 1e-8, as in a flat
    # window) is that mean, so it is compared exactly too. A wider band is mean +- nbdev x
    # sigma, a square root that TA-Lib defines by its float variance: there the float
    # comparison decides, and a close within a few ulps (~1e-11 at 1e5) of the band may go
    # either way, as between any two float engines. (With period 2 and nbdev 1 the bands are
    # exactly the two closes, so that happens on most bars.)
    zero_width = upper == lower
    long_entry = np.where(zero_width, side < 0, close < lower)
    short_entry = np.where(zero_width, side > 0, close > upper)
    # The state is path dependent, but only through "which happened last", so it vectorises:
    # the side comes from the latest entry, and it is flat if its exit came after that entry.
    # Warm-up bars (side 0) count as exits of both sides, harmlessly: no entry precedes them.
    last_long = _last_index(long_entry)
    last_short = _last_index(short_entry)
    last_long_exit = _last_index(side >= 0)
    last_short_exit = _last_index(side <= 0)
    is_long = (last_long > last_short) & (last_long_exit < last_long)
    is_short = (last_short > last_long) & (last_short_exit < last_short)
    return is_long.astype(np.int8) - is_short.astype(np.int8)


SPEC = StrategySpec(
    "bollinger_mean_reversion",
    "fade closes outside the bands, exit at the middle band",
    SCHEMA,
    signal,
)

"""Bollinger mean reversion: enter against a band break, exit back at the middle band."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.strategies.base import (
    Indicators,
    ParamSpec,
    Signal,
    StrategyParams,
    StrategySpec,
)

NAME = "bollinger_mean_reversion"


@dataclass(frozen=True, slots=True)
class BollingerReversionParams(StrategyParams):
    STRATEGY: ClassVar[str] = NAME
    SCHEMA: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("period", int, 20, 2, 10_000, "band length (bars)"),
        ParamSpec("nbdev", float, 2.0, 0.1, 10.0, "band width in standard deviations"),
    )
    period: int
    nbdev: float


def _last_index(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """For each bar, the index of the latest bar <= it where ``mask`` held (-1 if none)."""
    idx = np.where(mask, np.arange(mask.shape[0]), -1)
    return np.maximum.accumulate(idx)


def signal(bars: Bars, params: BollingerReversionParams, ind: Indicators) -> Signal:
    upper, middle, lower = ind.bollinger(params.period, params.nbdev)
    close = bars.close
    long_entry = close < lower
    short_entry = close > upper
    # The state is path dependent, but only through "which happened last", so it vectorises:
    # the side comes from the latest entry, and it is flat if its exit came after that entry.
    last_long = _last_index(long_entry)
    last_short = _last_index(short_entry)
    last_long_exit = _last_index(close >= middle)
    last_short_exit = _last_index(close <= middle)
    is_long = (last_long > last_short) & (last_long_exit < last_long)
    is_short = (last_short > last_long) & (last_short_exit < last_short)
    return is_long.astype(np.int8) - is_short.astype(np.int8)


SPEC = StrategySpec(
    NAME, "fade closes outside the bands, exit at the middle band", BollingerReversionParams, signal
)

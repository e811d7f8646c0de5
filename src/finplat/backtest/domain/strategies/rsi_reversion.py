"""RSI mean reversion: long once RSI falls below ``lower``, short once it rises above ``upper``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.errors import InvalidParameterError
from finplat.backtest.domain.strategies.base import (
    Indicators,
    ParamSpec,
    Signal,
    StrategyParams,
    StrategySpec,
    hold_last,
)

NAME = "rsi_mean_reversion"


@dataclass(frozen=True, slots=True)
class RsiReversionParams(StrategyParams):
    STRATEGY: ClassVar[str] = NAME
    SCHEMA: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("period", int, 14, 2, 10_000, "RSI length (bars)"),
        ParamSpec("lower", float, 30.0, 0.0, 100.0, "oversold level: go long below it"),
        ParamSpec("upper", float, 70.0, 0.0, 100.0, "overbought level: go short above it"),
    )
    period: int
    lower: float
    upper: float

    def check(self) -> None:
        if self.lower >= self.upper:
            raise InvalidParameterError(NAME, "lower", f"must be < upper ({self.upper})")


def signal(bars: Bars, params: RsiReversionParams, ind: Indicators) -> Signal:
    # A reversal system: the side flips only at the opposite extreme, and holds in between.
    # RSI is a ratio of Wilder averages, recursions whose exact values are rationals with
    # denominators growing as period^t, and TA-Lib defines it by its float recursion: so the
    # float comparison with a level decides, and an RSI within its rounding (~1e-13 on the
    # 0-100 scale) of a level may be decided either way.
    value = ind.rsi(params.period)
    state = (value < params.lower).astype(np.int8) - (value > params.upper).astype(np.int8)
    return hold_last(state)


SPEC = StrategySpec(NAME, "RSI oversold/overbought reversal", RsiReversionParams, signal)

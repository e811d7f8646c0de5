"""SMA crossover: long while the fast SMA is above the slow one, short while below."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.strategies.base import (
    FastBelowSlowParams,
    Indicators,
    ParamSpec,
    Signal,
    StrategySpec,
    above_below,
    hold_last,
)

NAME = "sma_crossover"


@dataclass(frozen=True, slots=True)
class SmaCrossParams(FastBelowSlowParams):
    STRATEGY: ClassVar[str] = NAME
    SCHEMA: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("fast", int, 10, 1, 10_000, "fast SMA length (bars)"),
        ParamSpec("slow", int, 30, 2, 50_000, "slow SMA length (bars)"),
    )
    fast: int
    slow: int


def signal(bars: Bars, params: SmaCrossParams, ind: Indicators) -> Signal:
    # Ties keep the previous side; flat until both averages exist.
    return hold_last(above_below(ind.sma(params.fast), ind.sma(params.slow)))


SPEC = StrategySpec(NAME, "SMA(fast) vs SMA(slow) crossover", SmaCrossParams, signal)

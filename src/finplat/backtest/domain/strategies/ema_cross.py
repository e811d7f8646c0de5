"""EMA crossover: long while the fast EMA is above the slow one, short while below."""

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

NAME = "ema_crossover"


@dataclass(frozen=True, slots=True)
class EmaCrossParams(FastBelowSlowParams):
    STRATEGY: ClassVar[str] = NAME
    SCHEMA: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("fast", int, 12, 1, 10_000, "fast EMA length (bars)"),
        ParamSpec("slow", int, 26, 2, 50_000, "slow EMA length (bars)"),
    )
    fast: int
    slow: int


def signal(bars: Bars, params: EmaCrossParams, ind: Indicators) -> Signal:
    return hold_last(above_below(ind.ema(params.fast), ind.ema(params.slow)))


SPEC = StrategySpec(NAME, "EMA(fast) vs EMA(slow) crossover", EmaCrossParams, signal)

"""MACD signal cross: long while the MACD line is above its signal line, short while below."""

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

NAME = "macd_signal_cross"


@dataclass(frozen=True, slots=True)
class MacdCrossParams(FastBelowSlowParams):
    STRATEGY: ClassVar[str] = NAME
    SCHEMA: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("fast", int, 12, 2, 10_000, "fast EMA length (bars)"),
        ParamSpec("slow", int, 26, 3, 50_000, "slow EMA length (bars)"),
        ParamSpec("signal", int, 9, 1, 10_000, "signal EMA length (bars)"),
    )
    fast: int
    slow: int
    signal: int


def signal(bars: Bars, params: MacdCrossParams, ind: Indicators) -> Signal:
    line, sig = ind.macd(params.fast, params.slow, params.signal)
    return hold_last(above_below(line, sig))


SPEC = StrategySpec(NAME, "MACD line vs signal line", MacdCrossParams, signal)

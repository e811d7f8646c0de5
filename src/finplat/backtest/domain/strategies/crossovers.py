"""Crossover strategies: long while line A is above line B, short while below.

Holds ``sma_crossover`` (fast vs slow SMA), ``ema_crossover`` (fast vs slow EMA) and
``macd_signal_cross`` (MACD line vs its signal line), each a params class and a spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.strategies.base import (
    FastBelowSlowParams,
    FloatArray,
    Indicators,
    ParamSpec,
    Signal,
    StrategySpec,
    above_below,
    hold_last,
)

P = TypeVar("P", bound=FastBelowSlowParams)


def _lengths(average: str, fast: int, slow: int, min_fast: int = 1) -> tuple[ParamSpec, ...]:
    """The ``fast`` and ``slow`` params: lengths in bars of the two ``average`` lines."""
    # slow's floor is one above fast's: a lower slow could never pass fast < slow.
    return (
        ParamSpec("fast", int, fast, min_fast, 10_000, f"fast {average} length (bars)"),
        ParamSpec("slow", int, slow, min_fast + 1, 50_000, f"slow {average} length (bars)"),
    )


def _crossover(
    description: str,
    params_type: type[P],
    lines: Callable[[P, Indicators], tuple[FloatArray, FloatArray]],
) -> StrategySpec[P]:
    """The spec of a strategy long while ``lines`` A is above B, short while below.

    Its name is ``params_type.STRATEGY``, so that errors and registry agree.
    """

    def signal(bars: Bars, params: P, ind: Indicators) -> Signal:
        # Ties keep the previous side; flat until both lines exist.
        return hold_last(above_below(*lines(params, ind)))

    return StrategySpec(params_type.STRATEGY, description, params_type, signal)


# One params class per strategy, as small as it gets: its STRATEGY and SCHEMA are class
# attributes, and a process sweep pickles params by the name of a module-level class.
@dataclass(frozen=True, slots=True)
class SmaCrossParams(FastBelowSlowParams):
    STRATEGY: ClassVar[str] = "sma_crossover"
    SCHEMA: ClassVar[tuple[ParamSpec, ...]] = _lengths("SMA", 10, 30)


@dataclass(frozen=True, slots=True)
class EmaCrossParams(FastBelowSlowParams):
    STRATEGY: ClassVar[str] = "ema_crossover"
    SCHEMA: ClassVar[tuple[ParamSpec, ...]] = _lengths("EMA", 12, 26)


@dataclass(frozen=True, slots=True)
class MacdCrossParams(FastBelowSlowParams):
    STRATEGY: ClassVar[str] = "macd_signal_cross"
    SCHEMA: ClassVar[tuple[ParamSpec, ...]] = (
        *_lengths("EMA", 12, 26, min_fast=2),
        ParamSpec("signal", int, 9, 1, 10_000, "signal EMA length (bars)"),
    )
    signal: int


SMA_SPEC = _crossover(
    "SMA(fast) vs SMA(slow) crossover",
    SmaCrossParams,
    lambda p, ind: (ind.sma(p.fast), ind.sma(p.slow)),
)
EMA_SPEC = _crossover(
    "EMA(fast) vs EMA(slow) crossover",
    EmaCrossParams,
    lambda p, ind: (ind.ema(p.fast), ind.ema(p.slow)),
)
MACD_SPEC = _crossover(
    "MACD line vs signal line",
    MacdCrossParams,
    lambda p, ind: ind.macd(p.fast, p.slow, p.signal),
)

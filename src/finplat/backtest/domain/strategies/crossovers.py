"""Crossover strategies: long while line A is above line B, short while below.

Holds ``sma_crossover`` (fast vs slow SMA), ``ema_crossover`` (fast vs slow EMA) and
``macd_signal_cross`` (MACD line vs its signal line), each a params class and a spec.

What is a tie: the SMA crossover decides it exactly on 8-decimal closes (two means are equal
as rationals; see ``Indicators.mean_side``). The EMA and MACD lines are recursions with the
factor 2 / (n + 1), whose exact values are rationals with denominators growing as (n + 1)^t
over the whole series, which no fixed-size integer holds; TA-Lib itself defines them by
their float recursion. So those sides are float comparisons of the float lines: a "tie" is
two equal floats, and lines closer than their rounding (a few ulps, ~1e-11 at a price of
1e5) may be decided either way, as they may differ between two correct float engines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

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
    side: Callable[[P, Indicators], Signal],
) -> StrategySpec[P]:
    """The spec of a strategy long while ``side`` is +1 (line A above B), short while -1.

    Its name is ``params_type.STRATEGY``, so that errors and registry agree.
    """

    def signal(bars: Bars, params: P, ind: Indicators) -> Signal:
        # Ties (side 0) keep the previous side; flat until both lines exist.
        return hold_last(side(params, ind))

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
    lambda p, ind: ind.mean_side(p.fast, p.slow),
)
EMA_SPEC = _crossover(
    "EMA(fast) vs EMA(slow) crossover",
    EmaCrossParams,
    lambda p, ind: above_below(ind.ema(p.fast), ind.ema(p.slow)),
)
MACD_SPEC = _crossover(
    "MACD line vs signal line",
    MacdCrossParams,
    lambda p, ind: above_below(*ind.macd(p.fast, p.slow, p.signal)),
)

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

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.strategies.base import (
    Indicators,
    Params,
    ParamSpec,
    Signal,
    StrategySpec,
    above_below,
    fast_below_slow,
    hold_last,
)


def _lengths(average: str, fast: int, slow: int, min_fast: int = 1) -> tuple[ParamSpec, ...]:
    """The ``fast`` and ``slow`` params: lengths in bars of the two ``average`` lines."""
    # slow's floor is one above fast's: a lower slow could never pass fast < slow.
    return (
        ParamSpec("fast", int, fast, min_fast, 10_000, f"fast {average} length (bars)"),
        ParamSpec("slow", int, slow, min_fast + 1, 50_000, f"slow {average} length (bars)"),
    )


def _crossover(
    name: str,
    description: str,
    schema: tuple[ParamSpec, ...],
    side: Callable[[Params, Indicators], Signal],
) -> StrategySpec:
    """The spec of a strategy long while ``side`` is +1 (line A above B), short while -1."""

    def signal(bars: Bars, params: Params, ind: Indicators) -> Signal:
        # Ties (side 0) keep the previous side; flat until both lines exist.
        return hold_last(side(params, ind))

    return StrategySpec(name, description, schema, signal, fast_below_slow)


SMA_SPEC = _crossover(
    "sma_crossover",
    "SMA(fast) vs SMA(slow) crossover",
    _lengths("SMA", 10, 30),
    lambda p, ind: ind.mean_side(int(p.fast), int(p.slow)),
)
EMA_SPEC = _crossover(
    "ema_crossover",
    "EMA(fast) vs EMA(slow) crossover",
    _lengths("EMA", 12, 26),
    lambda p, ind: above_below(ind.ema(int(p.fast)), ind.ema(int(p.slow))),
)
MACD_SPEC = _crossover(
    "macd_signal_cross",
    "MACD line vs signal line",
    (
        *_lengths("EMA", 12, 26, min_fast=2),
        ParamSpec("signal", int, 9, 1, 10_000, "signal EMA length (bars)"),
    ),
    lambda p, ind: above_below(*ind.macd(int(p.fast), int(p.slow), int(p.signal))),
)

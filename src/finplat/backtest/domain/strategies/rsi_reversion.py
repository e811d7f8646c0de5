"""RSI mean reversion: long once RSI falls below ``lower``, short once it rises above ``upper``."""

from __future__ import annotations

import numpy as np

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.strategies.base import (
    Indicators,
    Params,
    ParamSpec,
    Signal,
    StrategySpec,
    hold_last,
)

SCHEMA = (
    ParamSpec("period", int, 14, 2, 10_000, "RSI length (bars)"),
    ParamSpec("lower", float, 30.0, 0.0, 100.0, "oversold level: go long below it"),
    ParamSpec("upper", float, 70.0, 0.0, 100.0, "overbought level: go short above it"),
)


def lower_below_upper(params: Params) -> str | None:
    if params.lower >= params.upper:
        return f"lower must be < upper ({params.upper})"
    return None


def signal(bars: Bars, params: Params, ind: Indicators) -> Signal:
    # A reversal system: the side flips only at the opposite extreme, and holds in between.
    # RSI is a ratio of Wilder averages, recursions whose exact values are rationals with
    # denominators growing as period^t, and TA-Lib defines it by its float recursion: so the
    # float comparison with a level decides, and an RSI within its rounding (~1e-13 on the
    # 0-100 scale) of a level may be decided either way.
    value = ind.rsi(int(params.period))
    state = (value < params.lower).astype(np.int8) - (value > params.upper).astype(np.int8)
    return hold_last(state)


SPEC = StrategySpec(
    "rsi_mean_reversion", "RSI oversold/overbought reversal", SCHEMA, signal, lower_below_upper
)

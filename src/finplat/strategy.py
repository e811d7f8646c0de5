"""What you import to write a strategy of your own: `from finplat.strategy import ...`.

A strategy is a `StrategySpec`: a name (a Python identifier), a description, its parameters
(`ParamSpec`: name, `int` or `float`, default, inclusive range, description), an optional
check across parameters (the reason they do not fit together, or None) and a function
`signal(bars, params, indicators)` returning the target position of every bar: +1 long,
0 flat, -1 short. The target of bar i is decided at its close from bars 0..i only, and
filled at the open of bar i+1. `params` reads as attributes (`params.fast`); `indicators` is
a memo shared by the combinations of a sweep (`indicators.sma(n)`, `.ema`, `.rsi`, `.macd`,
`.bollinger`, `.mean_side(a, b)` for exact SMA comparisons). The five built-in strategies
are made the same way.

A portfolio strategy decides the weights of several symbols together: `portfolio_fn(panel,
params)` returns, per bar and symbol, the fraction of the portfolio's value to hold (negative
short, sum of absolute weights at most 1), from `panel.close` and the like, (bars, symbols)
arrays. Without one, a portfolio gives each symbol an equal share of `signal_fn`'s targets.

Put the spec at the top level of a `.py` file in a directory named by
`FINPLAT_BACKTEST_STRATEGY_DIRS`, or name it in your package's `finplat.strategies` entry-point
group. A strategy is trusted code: it runs inside the service with the service's rights.
`finplat backtest lookahead NAME` checks that it never reads a bar it has not seen.
"""

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.portfolio import Panel
from finplat.backtest.domain.strategies import Indicators, Params, ParamSpec, Signal, StrategySpec
from finplat.backtest.domain.strategies.base import above_below, hold_last

__all__ = [
    "Bars",
    "Indicators",
    "Panel",
    "ParamSpec",
    "Params",
    "Signal",
    "StrategySpec",
    "above_below",
    "hold_last",
]

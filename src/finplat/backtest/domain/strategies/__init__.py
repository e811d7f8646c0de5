"""Trading strategies: each maps bars to a target position per bar (+1 long, 0 flat, -1 short).

The public face of this package, for people writing their own, is `finplat.strategy`.
"""

from finplat.backtest.domain.strategies.base import (
    Indicators,
    Params,
    ParamSpec,
    Signal,
    StrategySpec,
)
from finplat.backtest.domain.strategies.registry import (
    BUILT_IN,
    REGISTRY,
    Registered,
    StrategyRegistry,
    get_strategy,
)

__all__ = [
    "BUILT_IN",
    "REGISTRY",
    "Indicators",
    "ParamSpec",
    "Params",
    "Registered",
    "Signal",
    "StrategyRegistry",
    "StrategySpec",
    "get_strategy",
]

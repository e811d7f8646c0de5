"""Trading strategies: each maps bars to a target position per bar (+1 long, 0 flat, -1 short)."""

from finplat.backtest.domain.strategies.base import (
    Indicators,
    ParamSpec,
    Signal,
    StrategyParams,
    StrategySpec,
)
from finplat.backtest.domain.strategies.registry import (
    STRATEGIES,
    get_strategy,
    parse_params,
    strategy_names,
)

__all__ = [
    "STRATEGIES",
    "Indicators",
    "ParamSpec",
    "Signal",
    "StrategyParams",
    "StrategySpec",
    "get_strategy",
    "parse_params",
    "strategy_names",
]

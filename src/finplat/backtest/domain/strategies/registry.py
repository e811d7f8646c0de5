"""Strategy registry: adding a strategy is one module (a crossover: a spec in ``crossovers``)
plus one line in ``_SPECS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from finplat.backtest.domain.errors import UnknownStrategyError
from finplat.backtest.domain.strategies import bollinger_reversion, crossovers, rsi_reversion
from finplat.backtest.domain.strategies.base import StrategyParams, StrategySpec

_SPECS: tuple[StrategySpec[Any], ...] = (
    crossovers.SMA_SPEC,
    crossovers.EMA_SPEC,
    rsi_reversion.SPEC,
    crossovers.MACD_SPEC,
    bollinger_reversion.SPEC,
)

STRATEGIES: Mapping[str, StrategySpec[Any]] = MappingProxyType({s.name: s for s in _SPECS})


def strategy_names() -> tuple[str, ...]:
    return tuple(STRATEGIES)


def get_strategy(name: str) -> StrategySpec[Any]:
    """The spec registered as ``name``; ``UnknownStrategyError`` otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategyError(name, strategy_names()) from None


def parse_params(name: str, raw: Mapping[str, object] | None = None) -> StrategyParams:
    """Validated params for strategy ``name`` (defaults fill missing names)."""
    params: StrategyParams = get_strategy(name).parse(raw)
    return params

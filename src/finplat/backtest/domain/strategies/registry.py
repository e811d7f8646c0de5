"""Strategy registry: the built-ins, then whatever the operator's strategies add at start-up.

Adding a built-in is one module plus one line in ``_BUILT_INS``. User strategies are found by
`finplat.backtest.adapters.strategy_loader` (entry points, directories) and added here, with
where each came from, before the service or a command uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

from finplat.backtest.domain.errors import InvalidStrategyError, UnknownStrategyError
from finplat.backtest.domain.strategies import bollinger_reversion, crossovers, rsi_reversion
from finplat.backtest.domain.strategies.base import StrategySpec

BUILT_IN = "built-in"


@dataclass(frozen=True, slots=True)
class Registered:
    """A strategy and where it came from: ``built-in``, an entry point, or a file."""

    spec: StrategySpec
    source: str


class StrategyRegistry:
    """Strategies by name; a name is taken once, so a user strategy never hides another."""

    def __init__(self) -> None:
        self._entries: dict[str, Registered] = {}

    def add(self, spec: StrategySpec, source: str) -> None:
        """Register ``spec``; ``InvalidStrategyError`` if its name is taken, naming both."""
        taken = self._entries.get(spec.name)
        if taken is not None:
            raise InvalidStrategyError(
                spec.name, f"from {source} is already registered from {taken.source}"
            )
        self._entries[spec.name] = Registered(spec, source)

    def get(self, name: str) -> StrategySpec:
        """The spec registered as ``name``; ``UnknownStrategyError`` otherwise."""
        try:
            return self._entries[name].spec
        except KeyError:
            raise UnknownStrategyError(name, self.names()) from None

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def entries(self) -> tuple[Registered, ...]:
        """Every strategy with its source, ordered by name."""
        return tuple(self._entries[name] for name in self.names())


_BUILT_INS = (
    crossovers.SMA_SPEC,
    crossovers.EMA_SPEC,
    rsi_reversion.SPEC,
    crossovers.MACD_SPEC,
    bollinger_reversion.SPEC,
)

REGISTRY = StrategyRegistry()
"""The process's strategies: the built-ins, plus user strategies once loaded."""
for _spec in _BUILT_INS:
    REGISTRY.add(_spec, BUILT_IN)


def get_strategy(name: str) -> StrategySpec:
    """The spec registered as ``name``; ``UnknownStrategyError`` otherwise."""
    return REGISTRY.get(name)

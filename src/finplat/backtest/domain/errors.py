"""Domain exceptions: everything the backtest domain raises on bad input derives from one root."""

from __future__ import annotations


class BacktestError(Exception):
    """Root of all backtest domain errors."""


class UnknownStrategyError(BacktestError, KeyError):
    """No strategy is registered under the requested name."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown strategy {name!r}; known: {', '.join(known)}")

    def __str__(self) -> str:
        # KeyError would otherwise repr() the message and add quotes.
        return str(self.args[0])


class InvalidParameterError(BacktestError, ValueError):
    """A parameter is unknown, of the wrong type, out of range, or inconsistent with another."""

    def __init__(self, owner: str, param: str, reason: str) -> None:
        # owner: the strategy or indicator whose parameter was rejected.
        self.owner = owner
        self.param = param
        self.reason = reason
        super().__init__(f"{owner}: parameter {param!r}: {reason}")


class InvalidConfigError(BacktestError, ValueError):
    """The engine configuration (fees, sizing, stops, capital) is invalid."""


class InvalidBarsError(BacktestError, ValueError):
    """Bars are malformed: ragged, wrong dtype, unsorted times, or too few rows."""


class DataFileError(BacktestError):
    """A kline file is missing or cannot be parsed."""

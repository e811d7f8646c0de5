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

    def __init__(self, owner: str, param: str | None, reason: str) -> None:
        # owner: the strategy or indicator whose parameter was rejected; param None: the
        # values do not fit together (a strategy's check), and the reason names them.
        self.owner = owner
        self.param = param
        self.reason = reason
        where = f"parameter {param!r}: " if param is not None else ""
        super().__init__(f"{owner}: {where}{reason}")


class InvalidStrategyError(BacktestError, ValueError):
    """A strategy is declared wrongly (its name, its parameter schema) or cannot be loaded."""

    def __init__(self, strategy: str, reason: str) -> None:
        self.strategy = strategy
        self.reason = reason
        super().__init__(f"strategy {strategy!r}: {reason}")


class StrategyFailedError(BacktestError):
    """A strategy's function raised, or returned targets that are not one of -1/0/+1 per bar."""

    def __init__(self, strategy: str, reason: str) -> None:
        self.strategy = strategy
        self.reason = reason
        super().__init__(f"strategy {strategy!r} {reason}")


class InvalidConfigError(BacktestError, ValueError):
    """The engine configuration (fees, sizing, stops, capital) is invalid."""


class InvalidBarsError(BacktestError, ValueError):
    """Bars are malformed: ragged, wrong dtype, unsorted times, or too few rows."""


class DataFileError(BacktestError):
    """A kline file is missing or cannot be parsed."""

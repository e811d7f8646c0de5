"""Errors of the backtest service around its pure domain: storage, bars and the consumer."""


class BacktestServiceError(Exception):
    """Root of the service's own errors (the domain has `BacktestError`)."""


class StoreError(BacktestServiceError):
    """A SQLite store could not be opened, read or written."""


class NotFoundError(BacktestServiceError):
    """No stored backtest or sweep has the requested id."""


class NoDataError(BacktestServiceError):
    """The bar source has no bars for the requested symbol, interval and range."""


class BarsUnavailableError(BacktestServiceError):
    """The bar source could not be reached or answered with an error."""


class InvalidUpdateError(BacktestServiceError):
    """A decoded PriceUpdate carries values the statistics cannot count (bad decimals)."""

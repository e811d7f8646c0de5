"""Clients of the platform's gRPC services, for scripts, notebooks and the platform's own tools.

They speak only the contract (`finance.*` stubs), so any process that can reach the services
can use them; the services themselves use them to call each other.
"""

from finplat.client.operations import (
    Combination,
    GridAxis,
    OperationError,
    SweepOperation,
    SweepProgress,
    SweepRun,
    WalkForwardOperation,
    WalkForwardProgress,
    WalkForwardRun,
)
from finplat.client.platform import BacktestRun, Platform, PortfolioRun

__all__ = [
    "BacktestRun",
    "Combination",
    "GridAxis",
    "OperationError",
    "Platform",
    "PortfolioRun",
    "SweepOperation",
    "SweepProgress",
    "SweepRun",
    "WalkForwardOperation",
    "WalkForwardProgress",
    "WalkForwardRun",
]

"""Running one backtest or one sweep from its request: shared by the gRPC API and the CLI.

Validation comes first (cheap, and it names the field at fault), then the bars, then the
engine on a worker thread: numba kernels and numpy release the GIL, so the event loop keeps
serving while a run computes.
"""

import asyncio
from dataclasses import dataclass
from typing import Protocol

import grpc

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.sweep_executor import run_sweep
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import BacktestResult, run_strategy
from finplat.backtest.domain.errors import (
    InvalidBarsError,
    InvalidConfigError,
    InvalidParameterError,
)
from finplat.backtest.errors import BarsUnavailableError, NoDataError
from finplat.backtest.service import convert, validation
from finplat.backtest.service.validation import DataQuery, RequestError


class BarSource(Protocol):
    """Where bars come from (`PriceServiceBars`, `LocalKlineBars`)."""

    async def load(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> Bars:
        """Bars opening in [start_ms, end_ms); `NoDataError` when there are none."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep one request from taking the service down."""

    max_bars: int = 5_000_000
    max_equity_points: int = 2000
    max_sweep_combinations: int = 10_000
    sweep_workers: int = 2


@dataclass(frozen=True, slots=True)
class BacktestRun:
    """A finished run: the stored message, the bars and the domain result (for charts)."""

    backtest: backtest_pb2.Backtest
    bars: Bars
    result: BacktestResult


async def fetch_bars(source: BarSource, query: DataQuery) -> Bars:
    """The bars of a checked range; FAILED_PRECONDITION without data, UNAVAILABLE on errors."""
    try:
        bars = await source.load(query.symbol, query.interval, query.start_ms, query.end_ms)
    except NoDataError as exc:
        raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from exc
    except BarsUnavailableError as exc:
        raise RequestError(grpc.StatusCode.UNAVAILABLE, str(exc)) from exc
    if len(bars) < 2:
        raise RequestError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"{len(bars)} {query.interval} bar(s) of {query.symbol} in range; need at least 2",
        )
    return bars


def _domain_error(exc: Exception) -> RequestError:
    if isinstance(exc, InvalidBarsError):
        return RequestError(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(exc))


async def backtest(
    request: backtest_service_pb2.RunBacktestRequest,
    source: BarSource,
    limits: Limits,
    run_id: str,
    now_ms: int,
) -> BacktestRun:
    """Validate, fetch the bars, run the engine and build the message to store."""
    spec = validation.strategy(request.strategy)
    params = validation.parameters(spec, request.parameters)
    config = validation.config(request.config)
    query = validation.data_range(request.data, limits.max_bars)
    bars = await fetch_bars(source, query)
    try:
        result = await asyncio.to_thread(run_strategy, bars, spec.name, params, config)
    except (InvalidBarsError, InvalidConfigError, InvalidParameterError) as exc:
        raise _domain_error(exc) from exc
    message = convert.backtest_proto(
        run_id, spec.name, params.as_dict(), query.proto(), result, now_ms,
        limits.max_equity_points,
    )  # fmt: skip
    return BacktestRun(message, bars, result)


async def sweep(
    request: backtest_service_pb2.RunSweepRequest,
    source: BarSource,
    limits: Limits,
    run_id: str,
    now_ms: int,
) -> backtest_pb2.Sweep:
    """Validate, fetch the bars once, run every combination and rank them."""
    spec = validation.strategy(request.strategy)
    grid = validation.grid(spec, request.grid, limits.max_sweep_combinations)
    rank_name, rank_attribute = validation.rank_by(request.rank_by)
    config = validation.config(request.config)
    query = validation.data_range(request.data, limits.max_bars)
    if request.top_n < 0:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "top_n must not be negative")
    bars = await fetch_bars(source, query)
    try:
        report = await asyncio.to_thread(
            run_sweep, bars, spec.name, grid, config, rank_attribute,
            workers=limits.sweep_workers, backend="thread",
        )  # fmt: skip
    except (InvalidBarsError, InvalidConfigError, InvalidParameterError) as exc:
        raise _domain_error(exc) from exc
    kept = report.results[: request.top_n] if request.top_n else report.results
    return backtest_pb2.Sweep(
        id=run_id,
        strategy=spec.name,
        data=query.proto(),
        config=convert.config_proto(config),
        rank_by=rank_name,
        results=[
            backtest_pb2.SweepResult(
                parameters={k: float(v) for k, v in r.params.as_dict().items()},
                metrics=convert.metrics_proto(r.metrics),
            )
            for r in kept
        ],
        create_time=convert.timestamp(now_ms),
    )

"""Running one backtest or one sweep from its request: shared by the gRPC API and the CLI.

Validation comes first (cheap, and it names the field at fault), then the bars, then the
engine on a worker thread: numba kernels and numpy release the GIL, so the event loop keeps
serving while a run computes.
"""

import asyncio
import logging
import math
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import grpc
import pyarrow as pa

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.sweep_executor import run_plan_in_threads
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import BacktestResult, EngineConfig, run_strategy
from finplat.backtest.domain.errors import BacktestError, InvalidBarsError, StrategyFailedError
from finplat.backtest.domain.lookahead import (
    DEFAULT_EVERY,
    DEFAULT_RANDOM,
    DEFAULT_SHOWN,
    LookaheadReport,
    check_lookahead,
    cut_points,
)
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.strategies import Params
from finplat.backtest.domain.sweep import SweepReport, plan_sweep
from finplat.backtest.errors import BarsUnavailableError, NoDataError
from finplat.backtest.service import convert, exports, validation
from finplat.backtest.service.validation import DataQuery, RequestError

log = logging.getLogger(__name__)
T = TypeVar("T")


class BarSource(Protocol):
    """Where bars come from (`PriceServiceBars`, `LocalKlineBars`)."""

    async def load(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> Bars:
        """Bars opening in [start_ms, end_ms); `NoDataError` when there are none."""
        ...


# Results a sweep may store and return: a sweep message of 10,000 results is about 2 MB,
# within gRPC's 4 MB default message size.
MAX_RESULTS = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep one request from taking the service down."""

    max_bars: int = 5_000_000
    max_equity_points: int = 2000
    max_sweep_combinations: int = 10_000
    sweep_workers: int = 2
    # Bars a look-ahead check may run the strategy over, summed over its prefixes: the cost
    # grows with bars x prefixes, and a year of 1m bars cut every 10 would take hours.
    max_lookahead_bars: int = 50_000_000


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


async def compute(work: Callable[[], T]) -> T:
    """``work`` on a worker thread, its domain errors as the status each deserves.

    A strategy that fails (user code that raised or returned bad targets) is the server's
    FAILED_PRECONDITION, logged with its traceback for the operator; bars the engine cannot
    use are FAILED_PRECONDITION too; the rest (parameters, config) are the caller's
    INVALID_ARGUMENT.
    """
    try:
        return await asyncio.to_thread(work)
    except StrategyFailedError as exc:
        log.warning("%s", exc, exc_info=exc.__cause__)
        raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from exc
    except InvalidBarsError as exc:
        raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from exc
    except BacktestError as exc:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc


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
    result = await compute(lambda: run_strategy(bars, spec.name, params, config))
    message = convert.backtest_proto(
        run_id, spec.name, params.as_dict(), query.proto(), result, now_ms,
        limits.max_equity_points,
    )  # fmt: skip
    return BacktestRun(message, bars, result)


@dataclass(frozen=True, slots=True)
class CheckedSweep:
    """A sweep request that passed every check, ready to fetch its bars and run."""

    strategy: str
    grid: dict[str, list[float]]
    rank_name: str
    rank_attribute: str
    config: EngineConfig
    query: DataQuery
    top_n: int


def check_sweep(request: backtest_service_pb2.RunSweepRequest, limits: Limits) -> CheckedSweep:
    """The request's fields checked, each failure with the status it deserves."""
    spec = validation.strategy(request.strategy)
    grid = validation.grid(spec, request.grid, limits.max_sweep_combinations)
    rank_name, rank_attribute = validation.rank_by(request.rank_by)
    config = validation.config(request.config)
    query = validation.data_range(request.data, limits.max_bars)
    if request.top_n < 0:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "top_n must not be negative")
    combos = math.prod(len(values) for values in grid.values())
    if combos > MAX_RESULTS and not 0 < request.top_n <= MAX_RESULTS:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"a grid of {combos:,} combinations needs top_n between 1 and {MAX_RESULTS:,}: "
            "the sweep stores and returns its best results, not all of them",
        )
    return CheckedSweep(spec.name, grid, rank_name, rank_attribute, config, query, request.top_n)


def sweep_message(
    checked: CheckedSweep, report: SweepReport, run_id: str, now_ms: int
) -> backtest_pb2.Sweep:
    """The sweep to store: its best `top_n` results (all when 0), best first."""
    kept = report.results[: checked.top_n] if checked.top_n else report.results
    return backtest_pb2.Sweep(
        id=run_id,
        strategy=checked.strategy,
        data=checked.query.proto(),
        config=convert.config_proto(checked.config),
        rank_by=checked.rank_name,
        results=[convert.sweep_result_proto(r.params, r.metrics) for r in kept],
        create_time=convert.timestamp(now_ms),
    )


@dataclass(frozen=True, slots=True)
class SweepRun:
    """A sweep run by RunSweep: the message to store, and every combination's metrics in
    grid order, for its whole table."""

    sweep: backtest_pb2.Sweep
    combos: Sequence[Params]
    metrics: Sequence[Metrics]


async def sweep(
    request: backtest_service_pb2.RunSweepRequest,
    source: BarSource,
    limits: Limits,
    run_id: str,
    now_ms: int,
) -> SweepRun:
    """Validate, fetch the bars once, run every combination and rank them."""
    checked = check_sweep(request, limits)
    bars = await fetch_bars(source, checked.query)

    def run() -> tuple[SweepReport, Sequence[Params], list[Metrics]]:
        plan = plan_sweep(
            bars, checked.strategy, checked.grid, checked.config, checked.rank_attribute
        )
        metrics = run_plan_in_threads(plan, limits.sweep_workers)
        return plan.report_all(metrics), plan.combos, metrics

    report, combos, metrics = await compute(run)
    return SweepRun(sweep_message(checked, report, run_id, now_ms), combos, metrics)


class SweepRowSink(Protocol):
    """Where a sweep's whole table is kept (the result store)."""

    async def add_sweep_rows(self, sweep_id: str, piece: int, rows: pa.Table) -> None: ...


async def keep_rows(
    results: SweepRowSink,
    sweep_id: str,
    chunks: AsyncIterable[tuple[Sequence[Mapping[str, float]], Sequence[Metrics]]],
) -> None:
    """Store a sweep's whole table a piece at a time, from its combinations and metrics in
    grid order, given a chunk at a time (never all in memory for a grid of a million)."""
    rows = exports.SweepRows()
    piece = 0
    async for params, metrics in chunks:
        for table in await asyncio.to_thread(rows.add, params, metrics):
            await results.add_sweep_rows(sweep_id, piece, table)
            piece += 1
    for table in rows.rest():
        await results.add_sweep_rows(sweep_id, piece, table)
        piece += 1


async def lookahead(
    request: backtest_service_pb2.CheckLookaheadRequest, source: BarSource, limits: Limits
) -> backtest_service_pb2.CheckLookaheadResponse:
    """Validate, fetch the bars and check the strategy on prefixes of them (CheckLookahead)."""
    spec = validation.strategy(request.strategy)
    params = validation.parameters(spec, request.parameters)
    query = validation.data_range(request.data, limits.max_bars)
    every = request.every or DEFAULT_EVERY
    random_count = (
        request.random_prefixes if request.HasField("random_prefixes") else DEFAULT_RANDOM
    )
    if every < 1 or random_count < 0 or request.max_differences < 0:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "every, random_prefixes and max_differences must not be negative",
        )
    bars = await fetch_bars(source, query)
    lengths = cut_points(len(bars), every, random_count, request.seed)
    work = int(lengths.sum())
    if work > limits.max_lookahead_bars:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{len(lengths)} prefixes of up to {len(bars)} bars are {work:,} bars to run, more"
            f" than {limits.max_lookahead_bars:,}: raise `every`, lower `random_prefixes` or"
            " shorten the range",
        )
    report = await compute(
        lambda: check_lookahead(
            bars, lambda prefix: spec.signal(prefix, params), lengths,
            request.max_differences or DEFAULT_SHOWN,
        )
    )  # fmt: skip
    return _lookahead_response(report, bars)


def _lookahead_response(
    report: LookaheadReport, bars: Bars
) -> backtest_service_pb2.CheckLookaheadResponse:
    response = backtest_service_pb2.CheckLookaheadResponse(
        clean=report.clean,
        bar_count=report.bar_count,
        prefixes_checked=report.prefixes_checked,
        differing_prefixes=report.differing_prefixes,
        differing_bars=report.differing_bars,
    )
    for found in report.first:
        difference = response.differences.add(
            full_target=found.full_target, prefix_target=found.prefix_target
        )
        difference.bar_time.FromMilliseconds(found.open_time_ms)
        difference.prefix_end_time.FromMilliseconds(int(bars.open_time_ms[found.prefix_end]))
    return response

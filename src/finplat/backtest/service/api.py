"""BacktestService over gRPC: live statistics, strategies, backtests and sweeps.

Every dependency is passed in. Runs are bounded by a semaphore (the machine has few cores; a
queue of waiting runs is better than many runs slowing each other down).
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TypeVar

import grpc
import pyarrow as pa
from google.api import httpbody_pb2  # type: ignore[import-untyped]
from google.protobuf.duration_pb2 import Duration
from typing_extensions import override

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finplat.backtest.adapters.results_store import InvalidPageTokenError
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.stats import StatsSnapshot
from finplat.backtest.domain.strategies import REGISTRY, Params
from finplat.backtest.errors import BarsUnavailableError, NoDataError, NotFoundError, StoreError
from finplat.backtest.service import exports, portfolios, runs
from finplat.backtest.service.charts import render_backtest_html
from finplat.backtest.service.consumer import PartitionLag
from finplat.backtest.service.convert import timestamp
from finplat.backtest.service.ids import new_id
from finplat.backtest.service.operations import Operations
from finplat.backtest.service.statuses import Context, abort, answered
from finplat.backtest.service.validation import RequestError
from finplat.client.tables import FileFormat, TableFileWriter, sweep_table, table_bytes

logger = logging.getLogger(__name__)
T = TypeVar("T")

HTML = "text/html; charset=utf-8"


class StatsView(Protocol):
    """Live statistics (`StatsConsumer`)."""

    def snapshot(self) -> tuple[StatsSnapshot, tuple[PartitionLag, ...]]: ...


class Results(Protocol):
    """Stored runs (`ResultStore`)."""

    async def add_backtest(self, backtest: backtest_pb2.Backtest) -> None: ...
    async def get_backtest(self, run_id: str) -> backtest_pb2.Backtest: ...
    async def list_backtests(
        self, page_size: int, page_token: str = "", strategy: str = "", symbol: str = ""
    ) -> tuple[list[backtest_pb2.Backtest], str]: ...
    async def add_sweep(self, sweep: backtest_pb2.Sweep) -> None: ...
    async def get_sweep(self, sweep_id: str) -> backtest_pb2.Sweep: ...
    async def add_sweep_rows(self, sweep_id: str, piece: int, rows: pa.Table) -> None: ...
    async def sweep_row_pieces(self, sweep_id: str) -> list[int]: ...
    async def get_sweep_rows(self, sweep_id: str, piece: int) -> pa.Table: ...
    async def add_walk_forward(self, walk_forward: backtest_service_pb2.WalkForward) -> None: ...
    async def get_walk_forward(self, walk_forward_id: str) -> backtest_service_pb2.WalkForward: ...


def stats_response(
    snapshot: StatsSnapshot, lags: tuple[PartitionLag, ...]
) -> backtest_service_pb2.GetStatsResponse:
    """The GetStats message of a statistics snapshot."""
    uptime = Duration()
    uptime.FromNanoseconds(round(snapshot.uptime_s * 1e9))
    return backtest_service_pb2.GetStatsResponse(
        total_messages=snapshot.total_messages,
        symbols=[
            backtest_pb2.SymbolStats(
                symbol=s.symbol,
                count=s.count,
                first_event_time=timestamp(s.first_event_ms),
                last_event_time=timestamp(s.last_event_ms),
                last_price=s.last_price,
                min_price=s.min_price,
                max_price=s.max_price,
                volume=s.volume,
                messages_per_second=s.messages_per_second,
            )
            for s in snapshot.symbols
        ],
        decode_errors=snapshot.decode_errors,
        dead_lettered=snapshot.dead_lettered,
        duplicates=snapshot.duplicates,
        lag=[
            backtest_pb2.PartitionLag(
                topic=lag.topic,
                partition=lag.partition,
                committed_offset=lag.next_offset,
                end_offset=lag.end_offset,
                lag=lag.lag,
            )
            for lag in lags
        ],
        uptime=uptime,
    )


def strategies_response() -> backtest_service_pb2.ListStrategiesResponse:
    """Every registered strategy with its parameter schema, ordered by name."""
    return backtest_service_pb2.ListStrategiesResponse(
        strategies=[
            backtest_pb2.Strategy(
                name=entry.spec.name,
                description=entry.spec.description,
                parameters=[
                    backtest_pb2.ParameterSpec(
                        name=p.name,
                        type=(
                            backtest_pb2.PARAMETER_TYPE_INT
                            if p.type is int
                            else backtest_pb2.PARAMETER_TYPE_FLOAT
                        ),
                        default_value=float(p.default),
                        min_value=float(p.min),
                        max_value=float(p.max),
                        description=p.description,
                    )
                    for p in entry.spec.schema
                ],
                source=entry.source,
                portfolio_only=entry.spec.signal_fn is None,
            )
            for entry in REGISTRY.entries()
        ]
    )


def _file(table: pa.Table, file_format: FileFormat) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(
        content_type=file_format.content_type, data=table_bytes(table, file_format)
    )


async def _slices(
    combos: Sequence[Params], metrics: Sequence[Metrics]
) -> AsyncIterator[tuple[Sequence[Params], Sequence[Metrics]]]:
    # A piece's worth at a time, so the table is built one piece at a time too.
    for start in range(0, len(combos), exports.ROWS_PER_PIECE):
        end = start + exports.ROWS_PER_PIECE
        yield combos[start:end], metrics[start:end]


class BacktestServicer(backtest_service_pb2_grpc.BacktestServiceServicer):
    """The gRPC face of the backtest service."""

    def __init__(
        self,
        stats: StatsView,
        bars: runs.BarSource,
        results: Results,
        limits: runs.Limits,
        operations: Operations,
        max_concurrent_runs: int = 2,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._stats = stats
        self._bars = bars
        self._results = results
        self._limits = limits
        self._operations = operations
        self._runs = asyncio.Semaphore(max_concurrent_runs)
        self._now_ms = now_ms

    async def chart_html(self, run_id: str) -> str:
        """The chart page of a stored run (GetBacktestChart, `finplat backtest run --chart`).

        The run's bars are fetched again for the price panel; when they cannot be (the price
        service is down or no longer has them) the page is rendered without it.
        """
        run = await self._results.get_backtest(run_id)
        data = run.data
        try:
            bars = await self._bars.load(
                data.symbol, data.interval,
                data.start_time.ToMilliseconds(), data.end_time.ToMilliseconds(),
            )  # fmt: skip
        except (NoDataError, BarsUnavailableError) as exc:
            logger.warning("chart without prices: %s", exc, extra={"id": run_id})
            bars = None
        return render_backtest_html(run, bars)

    @override
    async def GetStats(
        self, request: backtest_service_pb2.GetStatsRequest, context: Context
    ) -> backtest_service_pb2.GetStatsResponse:
        return stats_response(*self._stats.snapshot())

    @override
    async def ListStrategies(
        self, request: backtest_service_pb2.ListStrategiesRequest, context: Context
    ) -> backtest_service_pb2.ListStrategiesResponse:
        return strategies_response()

    @override
    async def RunBacktest(
        self, request: backtest_service_pb2.RunBacktestRequest, context: Context
    ) -> backtest_service_pb2.RunBacktestResponse:
        now = self._now_ms()
        try:
            async with self._runs:
                run = await runs.backtest(request, self._bars, self._limits, new_id(now), now)
            await self._results.add_backtest(run.backtest)
        except RequestError as exc:
            await abort(context, exc.code, exc.message)
        except StoreError as exc:
            await abort(context, grpc.StatusCode.INTERNAL, str(exc))
        metrics = run.backtest.metrics
        logger.info(
            "backtest stored",
            extra={"id": run.backtest.id, "strategy": request.strategy, "bars": len(run.bars),
                   "trades": metrics.trade_count, "total_return": metrics.total_return},
        )  # fmt: skip
        return backtest_service_pb2.RunBacktestResponse(backtest=run.backtest)

    @override
    async def CheckLookahead(
        self, request: backtest_service_pb2.CheckLookaheadRequest, context: Context
    ) -> backtest_service_pb2.CheckLookaheadResponse:
        async with self._runs:
            response = await answered(context, runs.lookahead(request, self._bars, self._limits))
        logger.info(
            "look-ahead checked",
            extra={"strategy": request.strategy, "bars": response.bar_count,
                   "prefixes": response.prefixes_checked, "differing": response.differing_bars},
        )  # fmt: skip
        return response

    @override
    async def GetBacktest(
        self, request: backtest_service_pb2.GetBacktestRequest, context: Context
    ) -> backtest_service_pb2.GetBacktestResponse:
        backtest = await answered(context, self._results.get_backtest(request.id))
        return backtest_service_pb2.GetBacktestResponse(backtest=backtest)

    @override
    async def GetBacktestChart(
        self, request: backtest_service_pb2.GetBacktestChartRequest, context: Context
    ) -> backtest_service_pb2.GetBacktestChartResponse:
        page = await answered(context, self.chart_html(request.id))
        chart = httpbody_pb2.HttpBody(content_type=HTML, data=page.encode())
        return backtest_service_pb2.GetBacktestChartResponse(chart=chart)

    @override
    async def ExportBacktest(
        self, request: backtest_service_pb2.ExportBacktestRequest, context: Context
    ) -> backtest_service_pb2.ExportBacktestResponse:
        build = exports.TABLES.get(request.table)
        if build is None:
            await abort(
                context, grpc.StatusCode.INVALID_ARGUMENT,
                "table must be RESULT_TABLE_TRADES or RESULT_TABLE_EQUITY",
            )  # fmt: skip
        file_format = exports.FORMATS.get(request.format)
        if file_format is None:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "unknown format")
        backtest = await answered(context, self._results.get_backtest(request.id))
        return backtest_service_pb2.ExportBacktestResponse(file=_file(build(backtest), file_format))

    @override
    async def ExportSweep(
        self, request: backtest_service_pb2.ExportSweepRequest, context: Context
    ) -> backtest_service_pb2.ExportSweepResponse:
        file_format = exports.FORMATS.get(request.format)
        if file_format is None:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "unknown format")
        sweep = await answered(context, self._results.get_sweep(request.id))
        return backtest_service_pb2.ExportSweepResponse(file=_file(sweep_table(sweep), file_format))

    @override
    async def DownloadSweepTable(
        self, request: backtest_service_pb2.DownloadSweepTableRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        file_format = exports.FORMATS.get(request.format)
        if file_format is None:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "unknown format")
        sweep = await answered(context, self._results.get_sweep(request.id))
        pieces = await answered(context, self._results.sweep_row_pieces(request.id))
        # No piece and no result is a grid whose every combination was skipped: an empty file.
        if not pieces and sweep.results:
            await abort(
                context, grpc.StatusCode.FAILED_PRECONDITION,
                f"sweep {request.id} was stored without its whole table (by an older version):"
                " ExportSweep has its ranked results",
            )  # fmt: skip
        writer = TableFileWriter(file_format)
        sent = False
        for piece in pieces:
            rows = await answered(context, self._results.get_sweep_rows(request.id, piece))
            for data in exports.messages(await asyncio.to_thread(writer.add, rows)):
                yield httpbody_pb2.HttpBody(content_type=file_format.content_type, data=data)
                sent = True
        last = await asyncio.to_thread(writer.close)
        for data in exports.messages(last) if last or sent else [b""]:
            yield httpbody_pb2.HttpBody(content_type=file_format.content_type, data=data)

    @override
    async def GetWalkForward(
        self, request: backtest_service_pb2.GetWalkForwardRequest, context: Context
    ) -> backtest_service_pb2.GetWalkForwardResponse:
        found = await answered(context, self._results.get_walk_forward(request.id))
        return backtest_service_pb2.GetWalkForwardResponse(walk_forward=found)

    @override
    async def ExportWalkForward(
        self, request: backtest_service_pb2.ExportWalkForwardRequest, context: Context
    ) -> backtest_service_pb2.ExportWalkForwardResponse:
        file_format = exports.FORMATS.get(request.format)
        make_table = exports.WALK_FORWARD_TABLES.get(request.table)
        if file_format is None or make_table is None:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "unknown table or format")
        found = await answered(context, self._results.get_walk_forward(request.id))
        return backtest_service_pb2.ExportWalkForwardResponse(
            file=_file(make_table(found), file_format)
        )

    @override
    async def ListBacktests(
        self, request: backtest_service_pb2.ListBacktestsRequest, context: Context
    ) -> backtest_service_pb2.ListBacktestsResponse:
        if request.page_size < 0:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "page_size must be >= 0")
        try:
            found, token = await self._results.list_backtests(
                request.page_size,
                request.page_token,
                request.strategy,
                request.symbol.strip().upper(),
            )
        except InvalidPageTokenError as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except StoreError as exc:
            await abort(context, grpc.StatusCode.INTERNAL, str(exc))
        return backtest_service_pb2.ListBacktestsResponse(backtests=found, next_page_token=token)

    @override
    async def RunSweep(
        self, request: backtest_service_pb2.RunSweepRequest, context: Context
    ) -> backtest_service_pb2.RunSweepResponse:
        now = self._now_ms()
        try:
            async with self._runs:
                run = await runs.sweep(request, self._bars, self._limits, new_id(now), now)
            sweep = run.sweep
            # The whole table first: a stored sweep always has it.
            await runs.keep_rows(self._results, sweep.id, _slices(run.combos, run.metrics))
            await self._results.add_sweep(sweep)
        except RequestError as exc:
            await abort(context, exc.code, exc.message)
        except StoreError as exc:
            await abort(context, grpc.StatusCode.INTERNAL, str(exc))
        logger.info(
            "sweep stored",
            extra={"id": sweep.id, "strategy": sweep.strategy, "results": len(sweep.results)},
        )
        return backtest_service_pb2.RunSweepResponse(sweep=sweep)

    @override
    async def RunPortfolio(
        self, request: backtest_service_pb2.RunPortfolioRequest, context: Context
    ) -> backtest_service_pb2.RunPortfolioResponse:
        async with self._runs:
            result = await answered(
                context, portfolios.portfolio(request, self._bars, self._limits)
            )
        return backtest_service_pb2.RunPortfolioResponse(portfolio=result)

    @override
    async def StartSweep(
        self, request: backtest_service_pb2.StartSweepRequest, context: Context
    ) -> Any:
        return await answered(context, self._operations.start(request))

    @override
    async def StartWalkForward(
        self, request: backtest_service_pb2.StartWalkForwardRequest, context: Context
    ) -> Any:
        return await answered(context, self._operations.start_walk_forward(request))

    @override
    async def WatchOperation(
        self, request: backtest_service_pb2.WatchOperationRequest, context: Context
    ) -> AsyncIterator[Any]:
        try:
            async for operation in self._operations.watch(request.name):
                yield operation
        except NotFoundError as exc:
            await abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
        except StoreError as exc:
            await abort(context, grpc.StatusCode.INTERNAL, str(exc))

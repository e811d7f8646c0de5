"""`finplat backtest`: serve the backtest service, run one backtest from the terminal, or run a
parameter sweep on a running service."""

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, cast

import click
import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]
from pydantic import SecretStr

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import price_service_pb2_grpc
from finplat.backtest.adapters.history import LocalKlineBars, PriceServiceBars, utc_ms
from finplat.backtest.adapters.strategy_loader import load_user_strategies
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.errors import InvalidStrategyError, StrategyFailedError
from finplat.backtest.domain.lookahead import (
    DEFAULT_EVERY,
    DEFAULT_RANDOM,
    DEFAULT_SHOWN,
    LookaheadReport,
    check_lookahead,
    cut_points,
)
from finplat.backtest.service import runs, validation
from finplat.backtest.service.app import serve as serve_service
from finplat.backtest.service.charts import render_backtest_html
from finplat.backtest.service.convert import timestamp
from finplat.backtest.service.ids import new_id
from finplat.backtest.service.settings import BacktestSettings
from finplat.backtest.service.validation import RequestError
from finplat.client.operations import OperationError, SweepOperation, SweepProgress, sweep_grid
from finplat.client.tables import FileFormat
from finplat.core.connections import KafkaSettings
from finplat.core.grpc_security import ChannelSecurity, bearer_metadata
from finplat.core.paths import SHARED_BINANCE_DATA

_TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]

# The options `run` and `lookahead` share: the strategy's parameters and the bars.
_PARAM = click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Repeatable.")
_SYMBOL = click.option("--symbol", default="BTCUSDT", show_default=True)
_INTERVAL = click.option("--interval", default="1m", show_default=True)
_START = click.option(
    "--start", required=True, type=click.DateTime(_TIME_FORMATS), help="UTC, inclusive."
)
_END = click.option(
    "--end", required=True, type=click.DateTime(_TIME_FORMATS), help="UTC, exclusive."
)
_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FINPLAT_DATA_DIR",
    default=SHARED_BINANCE_DATA,
    show_default="../shared/data/binance next to the repository",
    help="Binance kline archives (klines/spot/SYMBOL/INTERVAL/*.csv.gz).",
)
# The trading assumptions `run` and `sweep` share.
_CONFIG_OPTIONS = (
    click.option("--fee-bps", default=0.0, show_default=True, type=float),
    click.option("--slippage-bps", default=0.0, show_default=True, type=float),
    click.option("--initial-cash", default=10_000.0, show_default=True, type=float),
    click.option("--long-short", is_flag=True, help="Allow short positions (default: long only)."),
    click.option("--stop-loss", default=0.0, type=float, help="Fraction of entry; 0 disables."),
    click.option("--take-profit", default=0.0, type=float, help="Fraction of entry; 0 disables."),
)
_Command = TypeVar("_Command", bound=Callable[..., object])
_STRATEGY_DIR = click.option(
    "--strategy-dir",
    "strategy_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Load the strategies of this directory's files (repeatable; trusted code). "
    "Default: FINPLAT_BACKTEST_STRATEGY_DIRS. Entry points are always loaded.",
)


def _with_options(
    options: tuple[Callable[[_Command], _Command], ...], command: _Command
) -> _Command:
    """`command` with `options`, in their order."""
    for option in reversed(options):
        command = option(command)
    return command


def _config_options(command: _Command) -> _Command:
    return _with_options(_CONFIG_OPTIONS, command)


def _config(
    initial_cash: float, fee_bps: float, slippage_bps: float, long_short: bool,
    stop_loss: float, take_profit: float,
) -> backtest_pb2.BacktestConfig:  # fmt: skip
    return backtest_pb2.BacktestConfig(
        initial_cash=initial_cash,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        mode=(
            backtest_pb2.POSITION_MODE_LONG_SHORT
            if long_short
            else backtest_pb2.POSITION_MODE_LONG_ONLY
        ),
        stop_loss=stop_loss,
        take_profit=take_profit,
    )


def _load_strategies(directories: tuple[Path, ...]) -> None:
    """The user strategies `run` and `lookahead` may name, as the service would load them."""
    try:
        load_user_strategies(directories or BacktestSettings().strategy_dirs)
    except InvalidStrategyError as exc:
        raise _CheckFailed(str(exc)) from exc


@click.group()
def backtest() -> None:
    """Backtests of trading strategies, and live statistics of the price updates."""


@backtest.command()
def serve() -> None:
    """Run the backtest service (gRPC, statistics consumer) until SIGTERM or SIGINT."""
    try:
        asyncio.run(serve_service(BacktestSettings(), KafkaSettings()))
    except InvalidStrategyError as exc:
        raise click.ClickException(str(exc)) from exc


def _parameters(raw: tuple[str, ...]) -> dict[str, float]:
    values = {}
    for item in raw:
        name, sep, text = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError(item)
            values[name.strip()] = float(text)
        except ValueError:
            message = f"expected NAME=NUMBER, got {item!r}"
            raise click.BadParameter(message, param_hint="--param") from None
    return values


def _value(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:,.6g}"
    if hasattr(value, "ToTimedelta"):
        return str(value.ToTimedelta())
    return str(value)


def _data_range(
    symbol: str, interval: str, start: datetime, end: datetime
) -> backtest_pb2.DataRange:
    return backtest_pb2.DataRange(
        symbol=symbol,
        interval=interval,
        start_time=timestamp(utc_ms(start)),
        end_time=timestamp(utc_ms(end)),
    )


def assignments(parameters: Mapping[str, float]) -> str:
    """Parameter values as `run` and `sweep` show them: "fast=10 slow=30"."""
    return " ".join(f"{k}={v:g}" for k, v in sorted(parameters.items()))


def _what(
    strategy: str, parameters: Mapping[str, float], data: backtest_pb2.DataRange, bar_count: int
) -> str:
    """The first line of `run` and `lookahead`: which strategy, on which bars."""
    params = assignments(parameters)
    start = data.start_time.ToDatetime().isoformat(sep=" ", timespec="minutes")
    end = data.end_time.ToDatetime().isoformat(sep=" ", timespec="minutes")
    return (
        f"{strategy} {params} on {data.symbol} {data.interval}, "
        f"{start} to {end} UTC, {bar_count} bars"
    )


def metrics_table(run: backtest_pb2.Backtest) -> list[str]:
    """The lines `run` prints: what was run, then one metric per line."""
    lines = [
        _what(run.strategy, run.parameters, run.data, run.bar_count),
        f"{'metric':<24}{'value':>18}",
    ]
    for field in backtest_pb2.Metrics.DESCRIPTOR.fields:
        lines.append(f"{field.name:<24}{_value(getattr(run.metrics, field.name)):>18}")
    return lines


async def _run(request: backtest_service_pb2.RunBacktestRequest, data_dir: Path,
               price_service: str | None) -> runs.BacktestRun:  # fmt: skip
    now = time.time_ns() // 1_000_000
    if price_service is None:
        return await runs.backtest(request, LocalKlineBars(data_dir), runs.Limits(), new_id(), now)
    async with grpc.aio.insecure_channel(price_service) as channel:
        source = PriceServiceBars(price_service_pb2_grpc.PriceServiceStub(channel))
        return await runs.backtest(request, source, runs.Limits(), new_id(), now)


@backtest.command()
@click.option("--strategy", required=True, help="Strategy name, e.g. sma_crossover.")
@_PARAM
@_SYMBOL
@_INTERVAL
@_START
@_END
@_config_options
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), help="Write HTML here.")
@_DATA_DIR
@click.option("--price-service", metavar="ADDRESS", help="Take candles from this price service.")
@_STRATEGY_DIR
def run(
    strategy: str, params: tuple[str, ...], symbol: str, interval: str, start: datetime,
    end: datetime, fee_bps: float, slippage_bps: float, initial_cash: float, long_short: bool,
    stop_loss: float, take_profit: float, chart: Path | None, data_dir: Path,
    price_service: str | None, strategy_dirs: tuple[Path, ...],
) -> None:  # fmt: skip
    """Run one backtest on local kline files (or the price service) and print its metrics."""
    _load_strategies(strategy_dirs)
    request = backtest_service_pb2.RunBacktestRequest(
        strategy=strategy,
        parameters=_parameters(params),
        data=_data_range(symbol, interval, start, end),
        config=_config(initial_cash, fee_bps, slippage_bps, long_short, stop_loss, take_profit),
    )
    try:
        result = asyncio.run(_run(request, data_dir, price_service))
    except RequestError as exc:
        raise click.ClickException(f"{exc.code.name}: {exc.message}") from exc
    for line in metrics_table(result.backtest):
        click.echo(line)
    if chart is not None:
        chart.write_text(render_backtest_html(result.backtest, result.bars), encoding="utf-8")
        click.echo(f"chart written to {chart}")


class _CheckFailed(click.ClickException):
    """The check could not run: exit 2, since 1 means look-ahead found (a linter's findings)."""

    exit_code = 2


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def lookahead_lines(report: LookaheadReport, bars: Bars) -> list[str]:
    """The verdict `lookahead` prints: the first differing bars and their count, or none."""
    if report.clean:
        return [f"no look-ahead: no target changed in {report.prefixes_checked} prefixes"]
    lines = [f"{'bar (UTC)':<21}{'full':>5}{'prefix':>8}  prefix ends (UTC)"]
    for d in report.first:
        end = _utc(int(bars.open_time_ms[d.prefix_end]))
        lines.append(f"{_utc(d.open_time_ms):<21}{d.full_target:>5}{d.prefix_target:>8}  {end}")
    if report.differing_bars > len(report.first):
        lines.append(f"... and {report.differing_bars - len(report.first)} more")
    lines.append(
        f"LOOK-AHEAD: {report.differing_bars} of {report.bar_count} bars changed target "
        f"in {report.differing_prefixes} of {report.prefixes_checked} prefixes"
    )
    return lines


@backtest.command()
@click.argument("strategy")
@_PARAM
@_SYMBOL
@_INTERVAL
@_START
@_END
@click.option(
    "--every",
    default=DEFAULT_EVERY,
    show_default=True,
    type=click.IntRange(min=1),
    help="Check the prefixes ending at every Nth bar (1: at every bar).",
)
@click.option(
    "--random",
    "random_count",
    default=DEFAULT_RANDOM,
    show_default=True,
    type=click.IntRange(min=0),
    help="And this many prefixes ending at random bars.",
)
@click.option("--seed", default=0, show_default=True, help="Of the random prefix ends.")
@click.option(
    "--show",
    default=DEFAULT_SHOWN,
    show_default=True,
    type=click.IntRange(min=0),
    help="Bars to list.",
)
@_DATA_DIR
@_STRATEGY_DIR
def lookahead(
    strategy: str, params: tuple[str, ...], symbol: str, interval: str, start: datetime,
    end: datetime, every: int, random_count: int, seed: int, show: int, data_dir: Path,
    strategy_dirs: tuple[Path, ...],
) -> None:  # fmt: skip
    """Check STRATEGY for look-ahead: its targets on prefixes of the bars against those on all.

    Exit status 0 when no target changed, 1 when some did, 2 when the check could not run.
    """
    _load_strategies(strategy_dirs)
    raw = _parameters(params)
    try:
        spec = validation.strategy(strategy)
        parsed = validation.parameters(spec, raw)
        query = validation.data_range(
            _data_range(symbol, interval, start, end), runs.Limits().max_bars
        )
        bars = asyncio.run(runs.fetch_bars(LocalKlineBars(data_dir), query))
    except RequestError as exc:
        raise _CheckFailed(f"{exc.code.name}: {exc.message}") from exc
    started = time.perf_counter()
    try:
        report = check_lookahead(
            bars,
            lambda prefix: spec.signal(prefix, parsed),
            cut_points(len(bars), every, random_count, seed),
            limit=show,
        )
    except StrategyFailedError as exc:
        raise _CheckFailed(f"FAILED_PRECONDITION: {exc}") from exc
    elapsed = time.perf_counter() - started
    click.echo(_what(spec.name, parsed.as_dict(), query.proto(), len(bars)))
    for line in lookahead_lines(report, bars):
        click.echo(line)
    click.echo(
        f"prefixes ending every {every} bars and at {random_count} random bars (seed {seed}), "
        f"checked in {elapsed:.2f} s"
    )
    if not report.clean:
        click.get_current_context().exit(1)


_GRID = "NAME=START:STOP:STEP"
# The metrics `sweep` prints beside the one results are ranked by.
_SWEEP_METRICS = ("total_return", "sharpe", "max_drawdown", "trade_count")


def _grid(raw: tuple[str, ...]) -> dict[str, tuple[float, float, float]]:
    """--grid values as (start, stop, step), stop included (the service's ParameterRange)."""
    grid = {}
    for item in raw:
        name, _, span = item.partition("=")
        try:
            start, stop, step = (float(part) for part in span.split(":"))
        except ValueError:
            message = f"expected {_GRID} (numbers), got {item!r}"
            raise click.BadParameter(message, param_hint="--grid") from None
        if not name.strip():
            raise click.BadParameter(f"no parameter name in {item!r}", param_hint="--grid")
        grid[name.strip()] = (start, stop, step)
    return grid


def _rpc_failed(method: str, exc: grpc.RpcError) -> click.ClickException:
    # A blocking call's error is also its grpc.Call, which the type stubs do not say.
    call = cast(grpc.Call, exc)
    return click.ClickException(f"{method}: {call.code().name}: {call.details()}")


def _best(progress: SweepProgress | None) -> str | None:
    """The progress bar's item: the best combination so far."""
    if progress is None or progress.best is None:
        return None
    score = _value(progress.best.metrics[progress.rank_by])
    return f"best {progress.rank_by} {score}: {assignments(progress.best.parameters)}"


def _follow(operation: SweepOperation) -> SweepProgress | None:
    """Show the operation's progress until it is over; its last state (None if none came)."""
    last = None
    with contextlib.ExitStack() as stack:
        bar = None
        for progress in operation.follow():
            # The service knows the total from the start; a grid of none draws no bar.
            if bar is None and progress.total > 0:
                bar = stack.enter_context(
                    click.progressbar(
                        length=progress.total, label=progress.strategy, show_pos=True,
                        item_show_func=_best,
                    )
                )  # fmt: skip
            if bar is not None:
                bar.update(progress.done - bar.pos, progress)
            last = progress
    return last


def sweep_lines(sweep: backtest_pb2.Sweep, show: int) -> list[str]:
    """The best `show` results of a sweep, one a line: rank, parameters, then main metrics."""
    names = sorted({name for result in sweep.results for name in result.parameters})
    metrics = [sweep.rank_by, *(m for m in _SWEEP_METRICS if m != sweep.rank_by)]
    lines = [f"{'#':>4}" + "".join(f"{name:>12}" for name in names)
             + "".join(f"{metric:>16}" for metric in metrics)]  # fmt: skip
    for rank, result in enumerate(sweep.results[:show], start=1):
        lines.append(
            f"{rank:>4}"
            + "".join(f"{_value(result.parameters.get(name, math.nan)):>12}" for name in names)
            + "".join(f"{_value(getattr(result.metrics, metric)):>16}" for metric in metrics)
        )
    if len(sweep.results) > show:
        lines.append(f"... and {len(sweep.results) - show} more")
    return lines


def _finish(operation: SweepOperation, last: SweepProgress | None, show: int) -> None:
    """Print how the sweep ended and its best results; a failed one exits with its status."""
    if last is not None:
        took = last.elapsed.total_seconds()
        click.echo(f"{last.done}/{last.total} combinations in {took:.1f} s")
    try:
        run = operation.wait()
    except OperationError as exc:
        raise click.ClickException(f"{exc.code.name}: {exc.message}") from exc
    if run.message.results:
        best = run.message.results[0]
        score = _value(getattr(best.metrics, run.rank_by))
        click.echo(f"best by {run.rank_by} ({score}): {assignments(best.parameters)}")
    for line in sweep_lines(run.message, show):
        click.echo(line)
    click.echo(f"stored as sweep {run.id} (GET /api/sweeps/{run.id}:export for every row)")


# The options that reach a running backtest service: address, token, TLS.
_SERVICE_OPTIONS = (
    click.option(
        "--server", default="127.0.0.1:50052", show_default=True, metavar="ADDRESS",
        help="The backtest service, host:port.",
    ),
    click.option(
        "--token", envvar="FINPLAT_BACKTEST_API_TOKEN", show_envvar=True,
        help="Bearer token, when the service asks for one.",
    ),
    click.option(
        "--tls-ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Dial with TLS, trusting this PEM CA.",
    ),
    click.option(
        "--tls-server-name", help="Name to check the certificate against, if not the host."
    ),
)  # fmt: skip


def _service_options(command: _Command) -> _Command:
    return _with_options(_SERVICE_OPTIONS, command)


@backtest.command()
@_service_options
@click.option("--strategy", required=True, help="Strategy name, e.g. sma_crossover.")
@click.option(
    "--grid", "grid", multiple=True, required=True, metavar=_GRID,
    help="Values of one parameter, STOP included (repeatable); others keep their defaults.",
)  # fmt: skip
@_SYMBOL
@_INTERVAL
@_START
@_END
@_config_options
@click.option("--rank-by", default="sharpe", show_default=True, help="Metrics field to rank by.")
@click.option(
    "--top", default=0, show_default=True, type=click.IntRange(min=0),
    help="Results the service keeps, best first (0: all).",
)  # fmt: skip
@click.option(
    "--show", default=10, show_default=True, type=click.IntRange(min=0), help="Results to print."
)
@click.option("--detach", is_flag=True, help="Print the operation's name and leave it running.")
def sweep(
    server: str, token: str | None, tls_ca_file: Path | None, tls_server_name: str | None,
    strategy: str, grid: tuple[str, ...], symbol: str, interval: str, start: datetime,
    end: datetime, fee_bps: float, slippage_bps: float, initial_cash: float, long_short: bool,
    stop_loss: float, take_profit: float, rank_by: str, top: int, show: int, detach: bool,
) -> None:  # fmt: skip
    """Run a backtest for every combination of a parameter grid on a running backtest service.

    The sweep runs as an operation of the service: its name is printed first, then its progress
    until it is done, then the best results. Ctrl-C cancels the operation (exit 130). With
    --detach it runs on: follow it with GET /api/operations/ID:watch on the gateway, or
    Platform.sweep_operation(NAME) in Python. An operation ending with an error exits 1 with
    its status.
    """
    request = backtest_service_pb2.RunSweepRequest(
        strategy=strategy,
        grid=sweep_grid(_grid(grid)),
        data=_data_range(symbol, interval, start, end),
        config=_config(initial_cash, fee_bps, slippage_bps, long_short, stop_loss, take_profit),
        rank_by=rank_by,
        top_n=top,
    )
    security = ChannelSecurity(tls_ca_file=tls_ca_file, tls_server_name=tls_server_name)
    metadata = bearer_metadata(SecretStr(token) if token else None)
    with security.open_blocking_channel(server) as channel:
        try:
            operation = SweepOperation.start(channel, request, metadata=metadata)
        except grpc.RpcError as exc:
            raise _rpc_failed("StartSweep", exc) from exc
        click.echo(operation.name)
        if detach:
            return
        try:
            last = _follow(operation)
            _finish(operation, last, show)
        except KeyboardInterrupt:
            # The sweep runs in the service, not here: stopping to watch it would leave it on.
            try:
                operation.cancel()
            except grpc.RpcError as exc:
                raise _rpc_failed("CancelOperation", exc) from exc
            click.echo(f"\ncancelled {operation.name}", err=True)
            click.get_current_context().exit(130)
        except grpc.RpcError as exc:  # following it, or waiting for its result
            raise _rpc_failed(operation.name, exc) from exc


_EXPORTS = {
    "backtest-trades": ("ExportBacktest", backtest_service_pb2.RESULT_TABLE_TRADES),
    "backtest-equity": ("ExportBacktest", backtest_service_pb2.RESULT_TABLE_EQUITY),
    "sweep": ("ExportSweep", None),
    "sweep-all": ("DownloadSweepTable", None),
    "walk-forward-folds": ("ExportWalkForward", backtest_service_pb2.WALK_FORWARD_TABLE_FOLDS),
    "walk-forward-equity": ("ExportWalkForward", backtest_service_pb2.WALK_FORWARD_TABLE_EQUITY),
}


@backtest.command()
@_service_options
@click.argument("table", type=click.Choice(list(_EXPORTS)))
@click.argument("result_id", metavar="ID")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write: .parquet or .csv.",
)  # fmt: skip
def export(
    server: str, token: str | None, tls_ca_file: Path | None, tls_server_name: str | None,
    table: str, result_id: str, output: Path,
) -> None:  # fmt: skip
    """Write a stored result's TABLE as Parquet or CSV (by the file's suffix): a backtest's
    trades or equity curve, a sweep's ranked results (`sweep`) or every combination of its
    grid (`sweep-all`, streamed to the file as it comes), a walk-forward's folds or stitched
    curve.
    """
    try:
        file_format = FileFormat(output.suffix.lower())
    except ValueError:
        raise click.BadParameter("the file must end in .parquet or .csv", param_hint="-o") from None
    method, which = _EXPORTS[table]
    wire_format = (
        backtest_service_pb2.FILE_FORMAT_CSV
        if file_format is FileFormat.CSV
        else backtest_service_pb2.FILE_FORMAT_PARQUET
    )
    fields: dict[str, object] = {"id": result_id, "format": wire_format}
    if which is not None:
        fields["table"] = which
    request = getattr(backtest_service_pb2, f"{method}Request")(**fields)
    security = ChannelSecurity(tls_ca_file=tls_ca_file, tls_server_name=tls_server_name)
    metadata = bearer_metadata(SecretStr(token) if token else None)
    with security.open_blocking_channel(server) as channel:
        stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
        try:
            if method == "DownloadSweepTable":
                written = _write_stream(stub.DownloadSweepTable(request, metadata=metadata), output)
            else:
                answer = getattr(stub, method)(request, metadata=metadata, timeout=120)
                written = output.write_bytes(answer.file.data)
        except grpc.RpcError as exc:
            raise _rpc_failed(method, exc) from exc
    click.echo(f"{table} of {result_id} written to {output} ({written:,} bytes)")


def _write_stream(pieces: Iterable[httpbody_pb2.HttpBody], output: Path) -> int:
    """Write a file streamed in pieces to `output`; its size. A stream that fails leaves no
    file behind: the pieces go to a temporary file renamed once the last one has come."""
    partial = output.with_name(output.name + ".partial")
    written = 0
    try:
        with partial.open("wb") as file:
            for piece in pieces:
                written += file.write(piece.data)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return written

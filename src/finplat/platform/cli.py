"""`finplat up` and `finplat down`: the whole platform on loopback, for people and for tests."""

import signal
import time
from types import FrameType

import click
from pydantic import ValidationError

from finplat.platform.children import Endpoints, ServiceSettings, build_plan, finplat_command
from finplat.platform.errors import PlatformError
from finplat.platform.grpcurl import grpcurl_example
from finplat.platform.settings import PlatformSettings
from finplat.platform.supervisor import ChildStatus, Supervisor
from finplat.stack.settings import StackSettings
from finplat.stack.stack import Stack


def _progress(line: str) -> None:
    click.echo(f"  {line}", err=True)


def _supervisor() -> Supervisor:
    try:
        settings = PlatformSettings()
        return Supervisor(settings, Stack(StackSettings()) if settings.manage_stack else None)
    except ValidationError as exc:
        raise click.ClickException(f"invalid FINPLAT_PLATFORM_/STACK_ setting:\n{exc}") from exc


def _interrupt(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    # SIGTERM takes the Ctrl-C path: the same clean stop, whichever a user or script sends.
    raise KeyboardInterrupt


def _ignore_signals() -> None:
    # Stopping is bounded (SIGKILL after a timeout); a second Ctrl-C must not cut it short and
    # leave children behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _summary(endpoints: Endpoints, statuses: list[ChildStatus], elapsed_s: float) -> list[str]:
    gateway = endpoints.gateway_url
    lines = [f"finplat is up in {elapsed_s:.1f} s; feed: {endpoints.feed}", ""]
    for status in statuses:
        process = f"pid {status.pid}" if status.running else "finished"
        lines.append(f"  {status.name:<10} {process:<10} {status.detail:<18} log {status.log}")
    lines += [
        "",
        f"  web page         {gateway}/   (live prices, candles, backtests)",
        f"  gateway          {gateway}   (REST, WebSocket)",
        f"  API docs         {gateway}/docs   (OpenAPI: {gateway}/openapi.json)",
        f"  gateway metrics  {gateway}/metrics",
    ]
    if endpoints.price_metrics_url:
        lines.append(f"  price metrics    {endpoints.price_metrics_url}")
    if endpoints.backtest_metrics_url:
        lines.append(f"  backtest metrics {endpoints.backtest_metrics_url}")
    lines.append(
        f"  gRPC             price {endpoints.price_grpc}, backtest {endpoints.backtest_grpc}"
    )
    if endpoints.prometheus_url:
        lines.append(f"  Prometheus       {endpoints.prometheus_url}   (alerts: /alerts)")
    if endpoints.replay_url:
        lines.append(f"  replay           {endpoints.replay_url}/api/v3/time")
    ws_url = gateway.replace("http://", "ws://", 1)
    lines += [
        "",
        "Try:",
        f"  curl -s {gateway}/api/prices/BTCUSDT",
        f"  curl -s '{gateway}/api/candles/BTCUSDT/1m?limit=5'",
        f"  {grpcurl_example(endpoints.price_grpc)}",
        f"  .venv/bin/python -m websockets '{ws_url}/ws/prices?symbols=BTCUSDT'",
    ]
    return lines


@click.command()
@click.option(
    "--detach",
    is_flag=True,
    help="Return once everything is ready; leave it running, unwatched: a process that then"
    " exits is not restarted, as it is while `finplat up` runs in the foreground.",
)
@click.option(
    "--keep-stack", is_flag=True, help="On Ctrl-C, leave the stack running even if `up` started it."
)
def up(detach: bool, keep_stack: bool) -> None:
    """Start the stack, the replay feed, the price and backtest services and the gateway.

    Waits until each answers its health check, prints where to look, then runs until Ctrl-C or
    SIGTERM and stops what it started (the stack too, unless it was already running).
    Logs: var/log/<name>.log. Settings: FINPLAT_PLATFORM_* (FINPLAT_PLATFORM_LIVE=true streams
    from Binance instead of the replay) and each service's own FINPLAT_* variables.
    """
    supervisor = _supervisor()
    try:
        plan = build_plan(
            supervisor.settings, ServiceSettings.from_env(), finplat_command(), _now_ms()
        )
    except ValidationError as exc:
        raise click.ClickException(f"invalid service setting:\n{exc}") from exc
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        statuses = supervisor.up(plan, _progress)
    except PlatformError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise click.Abort from None
    for line in _summary(plan.endpoints, statuses, time.monotonic() - started):
        click.echo(line)
    if detach:
        click.echo("\nStop it with `finplat down` (`make down`).")
        return
    click.echo("\nCtrl-C stops everything.")
    try:
        reason = supervisor.watch()
        click.echo(f"stopping: {reason}", err=True)
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
        reason = None
    finally:
        _ignore_signals()
        # A stack that was up before belongs to someone else (a benchmark, another checkout's
        # tests): Ctrl-C stops only what this run started. `finplat down` stops it regardless.
        keep = keep_stack or not supervisor.started_stack
        _down(supervisor, keep)
        if keep and supervisor.stack is not None:
            click.echo("the stack is left running; `finplat stack down` stops it", err=True)
    if reason is not None:
        raise SystemExit(1)


def _down(supervisor: Supervisor, keep_stack: bool) -> dict[str, list[int]]:
    try:
        return supervisor.down(_progress, keep_stack)
    except PlatformError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.option("--keep-stack", is_flag=True, help="Stop the services only; leave the stack.")
def down(keep_stack: bool) -> None:
    """Stop what `finplat up` left running (by pid file), then the native stack."""
    stopped = _down(_supervisor(), keep_stack)
    if not stopped:
        click.echo("no platform process was running")
    for name, pids in sorted(stopped.items()):
        click.echo(f"{name:<10} stopped   [pid {', '.join(map(str, pids))}]")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

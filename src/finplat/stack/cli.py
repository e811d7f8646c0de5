"""`finplat stack up | down | status | logs`: the development servers, natively on loopback."""

import contextlib
import sys

import click
from pydantic import ValidationError

from finplat.stack.errors import StackError
from finplat.stack.process import follow, tail_lines
from finplat.stack.settings import StackSettings
from finplat.stack.stack import COMPONENT_NAMES, ComponentStatus, Stack, State

_EXIT_SOME_DOWN = 3


def _stack() -> Stack:
    try:
        return Stack(StackSettings())
    except ValidationError as exc:
        raise click.ClickException(f"invalid FINPLAT_STACK_* setting:\n{exc}") from exc


def _progress(line: str) -> None:
    click.echo(f"  {line}", err=True)


def _line(status: ComponentStatus) -> str:
    notes = [f"pid {status.pid}"] if status.pid is not None else []
    if status.detail:
        notes.append(status.detail)
    suffix = f"  [{'; '.join(notes)}]" if notes else ""
    return f"{status.name:<9} {status.state.value:<9} {status.address}{suffix}"


@click.group()
def stack() -> None:
    """Kafka, Schema Registry, Redis and InfluxDB for development, natively on loopback.

    Settings come from FINPLAT_STACK_* variables; runtime state lives in var/stack and
    downloads and builds in ~/.cache/finplat.
    """


@stack.command()
def up() -> None:
    """Start every server that is not running and wait until each answers."""
    servers = _stack()
    try:
        statuses = servers.up(_progress)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    for status in statuses:
        click.echo(_line(status))


@stack.command()
def down() -> None:
    """Stop every server (SIGTERM, then SIGKILL after a timeout)."""
    servers = _stack()
    try:
        stopped = servers.down(_progress)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    if not stopped:
        click.echo("nothing was running")
        return
    for name, pids in stopped.items():
        click.echo(f"{name:<9} stopped   [pid {', '.join(map(str, pids))}]")


@stack.command()
def status() -> None:
    """Show which servers run and answer; exit 3 when any does not."""
    servers = _stack()
    statuses = servers.status()
    for entry in statuses:
        click.echo(_line(entry))
    if any(entry.state is not State.UP for entry in statuses):
        sys.exit(_EXIT_SOME_DOWN)


@stack.command()
@click.argument("component", required=False, type=click.Choice(COMPONENT_NAMES))
@click.option("-n", "--lines", default=50, show_default=True, type=click.IntRange(min=0))
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing new lines.")
def logs(component: str | None, lines: int, follow_: bool) -> None:
    """Print the last lines of one server's log, or of all."""
    servers = _stack()
    names = [component] if component else list(COMPONENT_NAMES)
    paths = {name: servers.log_path(name) for name in names}
    for name, path in paths.items():
        if len(names) > 1:
            click.echo(f"==> {name} ({path}) <==")
        if not path.exists():
            click.echo("(no log yet)")
            continue
        for text in tail_lines(path, lines):
            click.echo(text)
    if not follow_:
        return
    with contextlib.suppress(KeyboardInterrupt):
        for name, text in follow(paths):
            click.echo(f"{name}: {text}" if len(names) > 1 else text)

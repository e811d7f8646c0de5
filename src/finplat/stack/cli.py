"""`finplat stack up | down | status | logs`: the development servers, natively on loopback."""

import contextlib
import sys

import click
from pydantic import ValidationError

from finplat.stack.errors import StackError
from finplat.stack.process import follow, tail_lines
from finplat.stack.settings import StackSettings
from finplat.stack.stack import SERVERS, ComponentStatus, Stack, State

_EXIT_SOME_DOWN = 3

_kafka_brokers = click.option(
    "--kafka-brokers",
    type=click.IntRange(min=1, max=9),
    default=None,
    help="Kafka nodes: 1 (the default), or 3 for a replicated cluster "
    "[FINPLAT_STACK_KAFKA_BROKERS].",
)


def _stack(kafka_brokers: int | None = None, only: tuple[str, ...] = ()) -> Stack:
    # Given on the command line, it wins over FINPLAT_STACK_KAFKA_BROKERS; the rest still
    # comes from the environment.
    try:
        settings = StackSettings()
        if kafka_brokers is not None:
            settings = StackSettings.model_validate(
                {**settings.model_dump(), "kafka_brokers": kafka_brokers}
            )
        return Stack(settings, only or SERVERS)
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
@click.argument("only", nargs=-1, type=click.Choice(SERVERS))
@_kafka_brokers
def up(only: tuple[str, ...], kafka_brokers: int | None) -> None:
    """Start every server (or the ONLY ones named) that is not running; wait until each answers.

    `kafka` names every Kafka node.
    """
    servers = _stack(kafka_brokers, only)
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
@_kafka_brokers
def status(kafka_brokers: int | None) -> None:
    """Show which servers run and answer; exit 3 when any does not."""
    servers = _stack(kafka_brokers)
    statuses = servers.status()
    for entry in statuses:
        click.echo(_line(entry))
    if any(entry.state is not State.UP for entry in statuses):
        sys.exit(_EXIT_SOME_DOWN)


@stack.command()
@click.argument("component", required=False)
@click.option("-n", "--lines", default=50, show_default=True, type=click.IntRange(min=0))
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing new lines.")
@_kafka_brokers
def logs(component: str | None, lines: int, follow_: bool, kafka_brokers: int | None) -> None:
    """Print the last lines of one server's log (kafka, kafka-2, redis, ...), or of all."""
    servers = _stack(kafka_brokers)
    known = [c.name for c in servers.components]
    if component is not None and component not in known:
        raise click.BadParameter(f"{component!r} is not one of {known}", param_hint="COMPONENT")
    names = [component] if component else known
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

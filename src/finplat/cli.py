"""The `finplat` command: one entry point, a subcommand group per area.

Areas are imported when their command runs, not when `finplat` starts: importing them all
loads numba, scipy, FastAPI and the clients of every store, three seconds and over 100 MB that
`finplat stack status` or the `finplat up` supervisor have no use for.
"""

import importlib
from collections.abc import Mapping
from typing import Any

import click

from finplat.core.logging import configure_logging

# Command name -> "module:attribute" of its click command.
_COMMANDS = {
    "proto": "finplat.contract.cli:proto",
    "schemas": "finplat.contract.cli:schemas",
    "kafka": "finplat.kafka.cli:kafka",
    "stack": "finplat.stack.cli:stack",
    "price": "finplat.price.cli:price",
    "replay": "finplat.replay.cli:replay",
    "backtest": "finplat.backtest.cli:backtest",
    "gateway": "finplat.gateway.cli:gateway",
    "health": "finplat.core.health_cli:health",
    "settings-doc": "finplat.settings_doc:settings_doc",
    "up": "finplat.platform.cli:up",
    "down": "finplat.platform.cli:down",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (`--help` imports them all)."""

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self._lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(
    cls=_LazyGroup,
    lazy=_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Threshold of the JSON log lines written to standard error.",
)
@click.version_option(package_name="finplat")
def finplat(log_level: str) -> None:
    """finplat: live crypto prices, storage, streaming and backtests, gRPC first."""
    configure_logging(log_level)


def main() -> None:
    """Console-script entry point."""
    finplat(prog_name="finplat")

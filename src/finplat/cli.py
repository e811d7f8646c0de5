"""The `finplat` command: one entry point, a subcommand group per area."""

import click

from finplat.backtest.cli import backtest
from finplat.contract.cli import proto, schemas
from finplat.core.health_cli import health
from finplat.core.logging import configure_logging
from finplat.core.settings_doc import settings_doc
from finplat.gateway.cli import gateway
from finplat.kafka.cli import kafka
from finplat.platform.cli import down, up
from finplat.price.cli import price
from finplat.price.replay.cli import replay
from finplat.stack.cli import stack


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


finplat.add_command(proto)
finplat.add_command(schemas)
finplat.add_command(kafka)
finplat.add_command(stack)
finplat.add_command(price)
finplat.add_command(replay)
finplat.add_command(backtest)
finplat.add_command(gateway)
finplat.add_command(health)
finplat.add_command(settings_doc)
finplat.add_command(up)
finplat.add_command(down)


def main() -> None:
    """Console-script entry point."""
    finplat(prog_name="finplat")

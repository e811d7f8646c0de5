"""`finplat kafka probe`: is Kafka, with the registry, carrying PriceUpdates end to end?"""

import click

from finplat.core.connections import KafkaSettings
from finplat.kafka.errors import KafkaAdapterError
from finplat.kafka.probe import run_probe


@click.group()
def kafka() -> None:
    """The price-updates topic on Kafka."""


@kafka.command()
@click.option("--count", default=5, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--symbol", default="PROBEUSDT", show_default=True, help="Key of the messages.")
@click.option("--timeout-s", default=30.0, show_default=True, type=float)
def probe(count: int, symbol: str, timeout_s: float) -> None:
    """Produce COUNT Avro PriceUpdates through the registry and read them back."""
    settings = KafkaSettings()
    click.echo(
        f"producing {count} PriceUpdates to {settings.topic} at {settings.bootstrap_servers}"
    )
    try:
        result = run_probe(settings, symbol, count, timeout_s)
    except KafkaAdapterError as exc:
        raise click.ClickException(str(exc)) from exc
    for partition, offset, update in result.received:
        click.echo(
            f"  partition {partition} offset {offset}: {update.symbol} {update.price} "
            f"at {update.timestamp} ({update.event_id})"
        )
    missing = len(result.sent) - len(result.received)
    if missing:
        raise click.ClickException(f"{missing} of {len(result.sent)} probe messages not read back")
    click.echo(f"read back all {len(result.sent)} messages")

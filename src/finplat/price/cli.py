"""`finplat price ...`: run the price service, load history."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import click

from finplat.binance.errors import BinanceFormatError
from finplat.core.clock import SystemClock
from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.core.runner import run_until_signalled
from finplat.market.intervals import INTERVALS
from finplat.price.adapters.binance.backfill import BackfillProgress, backfill
from finplat.price.adapters.binance.rest import BinanceRest
from finplat.price.adapters.influx_market import InfluxMarketStore
from finplat.price.errors import PriceError
from finplat.price.service import eventloop
from finplat.price.service.app import Infrastructure, PriceService
from finplat.price.service.settings import PriceSettings

_DAY = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"])


@click.group()
def price() -> None:
    """The price service: Binance feed to Redis, InfluxDB and Kafka, served over gRPC."""


@price.command()
def serve() -> None:
    """Run the price service until Ctrl-C or SIGTERM (settings from FINPLAT_* variables)."""
    eventloop.run(
        _serve(PriceSettings(), Infrastructure(KafkaSettings(), RedisSettings(), InfluxSettings()))
    )


async def _serve(settings: PriceSettings, infra: Infrastructure) -> None:
    # Built inside the loop: the async InfluxDB client refuses to be created outside one.
    service = PriceService(settings, infra, SystemClock())
    await run_until_signalled(service.run)


def _utc_ms(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


@price.command("backfill")
@click.option("--symbol", "symbols", multiple=True, required=True, help="Repeat for several.")
@click.option("--interval", default="1m", show_default=True, type=click.Choice(list(INTERVALS)))
@click.option("--start", type=_DAY, required=True, help="UTC, e.g. 2024-10-01.")
@click.option("--end", type=_DAY, required=True, help="UTC, exclusive.")
def backfill_command(symbols: Sequence[str], interval: str, start: datetime, end: datetime) -> None:
    """Load historical klines over Binance's REST API (FINPLAT_PRICE_FEED__REST__BASE_URL)
    into InfluxDB, page by page within the exchange's weight limits."""
    if start >= end:
        raise click.BadParameter("--start must be before --end")
    settings = PriceSettings()
    try:
        total = asyncio.run(
            _backfill(settings, InfluxSettings(), symbols, interval, _utc_ms(start), _utc_ms(end))
        )
    except (PriceError, BinanceFormatError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"stored {total} {interval} candles")


async def _backfill(
    settings: PriceSettings,
    influx: InfluxSettings,
    symbols: Sequence[str],
    interval: str,
    start_ms: int,
    end_ms: int,
) -> int:
    store = InfluxMarketStore(influx)
    try:
        async with BinanceRest(settings.feed.rest) as rest:
            return sum(
                [
                    await _backfill_symbol(rest, store, symbol.upper(), interval, start_ms, end_ms)
                    for symbol in symbols
                ]
            )
    finally:
        await store.close()


async def _backfill_symbol(
    rest: BinanceRest,
    store: InfluxMarketStore,
    symbol: str,
    interval: str,
    start_ms: int,
    end_ms: int,
) -> int:
    steps = 1000
    with click.progressbar(length=steps, label=f"{symbol} {interval}") as bar:
        shown = 0

        def advance(progress: BackfillProgress) -> None:
            nonlocal shown
            step = int(progress.fraction * steps) - shown
            bar.update(step)
            shown += step

        return await backfill(
            rest, symbol, interval, start_ms, end_ms, store.write_candles, advance
        )

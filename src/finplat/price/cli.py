"""`finplat price ...`: run the price service, load history."""

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
import grpc

from finance.market.v1 import market_pb2, price_service_pb2_grpc
from finplat.binance.errors import BinanceFormatError
from finplat.client.candle_files import SUFFIXES, write_candles
from finplat.client.candles import MAX_PAGE, fetch_candles, windows
from finplat.core.clock import SystemClock
from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.core.grpc_security import ChannelSecurity, bearer_metadata
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


@price.command("export")
@click.argument("symbol")
@click.argument("interval", type=click.Choice(list(INTERVALS)))
@click.option("--start", type=_DAY, required=True, help="UTC, e.g. 2024-10-01.")
@click.option("--end", type=_DAY, required=True, help="UTC, exclusive.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help=f"The file to write, its format by suffix: {', '.join(SUFFIXES)}.",
)
@click.option("--address", help="The price service, host:port.  [default: its gRPC settings]")
@click.option(
    "--tls-ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Dial with TLS, trusting this PEM CA.",
)
def export(
    symbol: str,
    interval: str,
    start: datetime,
    end: datetime,
    output: Path,
    address: str | None,
    tls_ca_file: Path | None,
) -> None:
    """Write the closed candles of SYMBOL at INTERVAL in [--start, --end) to a Parquet or CSV
    file, paged through the price service's GetCandles (a token in FINPLAT_PRICE_API_TOKEN is
    sent with each call)."""
    if start >= end:
        raise click.BadParameter("--start must be before --end")
    if output.suffix.lower() not in SUFFIXES:
        raise click.BadParameter(f"must end in {' or '.join(SUFFIXES)}", param_hint="--output")
    settings = PriceSettings()
    start_ms, end_ms = _utc_ms(start), _utc_ms(end)
    pages = len(list(windows(interval, start_ms, end_ms, MAX_PAGE)))
    with click.progressbar(length=pages, label=f"{symbol.upper()} {interval}") as bar:
        try:
            candles = asyncio.run(
                _export(ChannelSecurity(tls_ca_file=tls_ca_file), address or settings.grpc_address,
                        symbol, interval, start_ms, end_ms, bearer_metadata(settings.api_token),
                        lambda _: bar.update(1))
            )  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            raise click.ClickException(f"GetCandles: {exc.code().name}: {exc.details()}") from exc
    write_candles(candles, output)
    click.echo(f"{len(candles)} candles written to {output}")


async def _export(
    security: ChannelSecurity,
    address: str,
    symbol: str,
    interval: str,
    start_ms: int,
    end_ms: int,
    metadata: tuple[tuple[str, str], ...],
    on_page: Callable[[int], None],
) -> list[market_pb2.Candle]:
    async with security.open_channel(address) as channel:
        stub = price_service_pb2_grpc.PriceServiceStub(channel)
        return await fetch_candles(
            stub, symbol, interval, start_ms, end_ms, metadata=metadata, on_page=on_page
        )

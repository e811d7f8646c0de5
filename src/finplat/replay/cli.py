"""`finplat replay serve`: a Binance look-alike replaying real market data locally."""

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import click

from finplat.replay.server import ReplayServer
from finplat.replay.settings import ReplaySettings


@click.group()
def replay() -> None:
    """Replay recorded Binance market data over Binance's WebSocket and REST protocols."""


@replay.command()
@click.option("--host", help="Interface to listen on [FINPLAT_REPLAY_HOST, 127.0.0.1].")
@click.option("--port", type=int, help="Port, 0 for any free one [FINPLAT_REPLAY_PORT, 9443].")
@click.option(
    "--speed",
    type=float,
    help="Market time per real second: 1 real time, 60 a minute a second, 0 as fast as "
    "clients read [FINPLAT_REPLAY_SPEED, 1].",
)
@click.option("--loop/--no-loop", default=None, help="Start over when the data runs out.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Market data in the data.binance.vision layout [FINPLAT_DATA_DIR].",
)
@click.option("--symbol", "symbols", multiple=True, help="Symbol to replay (repeatable).")
def serve(
    host: str | None,
    port: int | None,
    speed: float | None,
    loop: bool | None,
    data_dir: Path | None,
    symbols: tuple[str, ...],
) -> None:
    """Serve ws://HOST:PORT/stream?streams=... and http://HOST:PORT/api/v3/... until Ctrl-C.

    Faults on command: GET /control/drop, /control/malformed?n=3, /control/stall?seconds=2,
    /control/shutdown, /control/rest-failures?n=1&status=429&retry_after=1; /control/stats
    shows counters.
    """
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "host": host,
            "port": port,
            "speed": speed,
            "loop": loop,
            "data_dir": data_dir,
            "symbols": symbols or None,
        }.items()
        if value is not None
    }
    settings = ReplaySettings(**overrides)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(ReplayServer(settings).serve_forever())

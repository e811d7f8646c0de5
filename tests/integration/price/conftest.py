"""Our own replay server, started in-process on a free port (it is our code, not infrastructure)."""

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from finplat.price.replay.server import ReplayServer
from finplat.price.replay.settings import ReplaySettings
from tests.paths import REPO_ROOT

StartReplay = Callable[..., Awaitable[ReplayServer]]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``FINPLAT_DATA_DIR``, else ``../shared/data/binance`` next to the repository."""
    path = Path(os.environ.get("FINPLAT_DATA_DIR", REPO_ROOT.parent / "shared/data/binance"))
    if not (path / "SOURCE.md").is_file():
        pytest.fail(f"market data not found under {path}; set FINPLAT_DATA_DIR")
    return path


@pytest_asyncio.fixture
async def start_replay(data_dir: Path) -> AsyncIterator[StartReplay]:
    """Start replay servers over two days of BTCUSDT 1m klines and the ETHUSDT OHLCV file.

    Market time starts at 2024-10-01 03:00 UTC (where the ETH file begins) and runs 600x: one
    1m kline per symbol every 0.1 s.
    """
    servers: list[ReplayServer] = []

    async def start(**overrides: Any) -> ReplayServer:
        options: dict[str, Any] = {
            "port": 0,
            "data_dir": data_dir,
            "kline_first_day": date(2024, 10, 1),
            "kline_last_day": date(2024, 10, 2),
            "speed": 600.0,
        }
        server = ReplayServer(ReplaySettings(**(options | overrides)))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()

"""The real stack for integration tests: the one named in the environment, or one started here.

When FINPLAT_KAFKA_BOOTSTRAP_SERVERS and FINPLAT_KAFKA_SCHEMA_REGISTRY_URL are set, the tests use
that stack as it is. Otherwise the session runs `finplat stack up` (a stack already running is
reused and left running) and `finplat stack down` at the end if it started it. A stack that
cannot be started fails the session: integration tests never skip.
"""

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from finplat.core.connections import InfluxSettings, KafkaSettings
from finplat.replay.server import ReplayServer
from finplat.replay.settings import ReplaySettings
from tests.paths import FINPLAT, REPO_ROOT
from tests.stores import influx_bucket

_ADDRESS_VARIABLES = ("FINPLAT_KAFKA_BOOTSTRAP_SERVERS", "FINPLAT_KAFKA_SCHEMA_REGISTRY_URL")


def _stack(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FINPLAT), "stack", command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )


@pytest.fixture(scope="session")
def stack() -> Iterator[None]:
    """A running stack for the whole session."""
    given = [name for name in _ADDRESS_VARIABLES if os.environ.get(name)]
    if given:
        if len(given) != len(_ADDRESS_VARIABLES):
            pytest.fail(f"set all of {_ADDRESS_VARIABLES} to use a running stack, or none")
        yield
        return
    already_up = _stack("status").returncode == 0
    started = _stack("up")
    if started.returncode != 0:
        pytest.fail(f"`finplat stack up` failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield
    finally:
        if not already_up:
            stopped = _stack("down")
            assert stopped.returncode == 0, stopped.stderr


@pytest.fixture
def kafka_settings(stack: None) -> KafkaSettings:
    """Kafka and registry addresses of the running stack."""
    return KafkaSettings()


@pytest.fixture
def influx_settings(stack: None) -> Iterator[InfluxSettings]:
    """A bucket of its own for one test, deleted afterwards: stored candles never leak over."""
    with influx_bucket(InfluxSettings(), f"test-{uuid.uuid4().hex}") as settings:
        yield settings


StartReplay = Callable[..., Awaitable[ReplayServer]]


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

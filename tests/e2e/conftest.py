"""The running platform for end-to-end tests: the one named in the environment, or one started here.

With FINPLAT_E2E_GATEWAY_URL set (and optionally FINPLAT_E2E_REPLAY_URL and
FINPLAT_E2E_PROMETHEUS_URL), the tests use that platform as it is. Otherwise the fixture runs
`finplat up --detach` on the default ports and `finplat down` once the e2e tests are done, only
if it started the platform (a platform already answering on the default gateway port is used
and left running); a stack that was already running (another session's, a benchmark's) is left
running. A platform that cannot start fails the tests: they never skip.
"""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.paths import FINPLAT, REPO_ROOT

_GATEWAY_VARIABLE = "FINPLAT_E2E_GATEWAY_URL"
_REPLAY_VARIABLE = "FINPLAT_E2E_REPLAY_URL"
_PROMETHEUS_VARIABLE = "FINPLAT_E2E_PROMETHEUS_URL"
_DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"
_DEFAULT_REPLAY_URL = "http://127.0.0.1:9443"
_DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
# The platform commands on their own, so these tests do not depend on how the root CLI
# registers them (the stack's tests do the same).
_PLATFORM_CLI = "from finplat.platform.cli import {0}; {0}(prog_name='finplat {0}')"
# A cold cache builds the stack's servers first; a built one starts in about a minute.
_UP_TIMEOUT_S = 3600
_DOWN_TIMEOUT_S = 180


@dataclass(frozen=True)
class Platform:
    """Where the platform under test answers."""

    gateway_url: str
    replay_url: str | None
    """The replay feeding the price service; None for a platform fed by live Binance."""
    prometheus_url: str = _DEFAULT_PROMETHEUS_URL
    """The Prometheus scraping the platform."""

    @property
    def ws_url(self) -> str:
        """The gateway's WebSocket origin."""
        return self.gateway_url.replace("http", "ws", 1)

    def market_now_ms(self) -> int:
        """The feed's clock: the replay's market time, or the wall clock when live."""
        if self.replay_url is None:
            return time.time_ns() // 1_000_000
        response = httpx.get(f"{self.replay_url}/api/v3/time", timeout=5)
        response.raise_for_status()
        server_time: int = response.json()["serverTime"]
        return server_time


def _platform(command: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PLATFORM_CLI.format(command), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _stack_is_up() -> bool:
    status = subprocess.run(
        [str(FINPLAT), "stack", "status"],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return status.returncode == 0


def _healthy(gateway_url: str) -> bool:
    try:
        return httpx.get(f"{gateway_url}/health", timeout=5).status_code == httpx.codes.OK
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="package")
def platform() -> Iterator[Platform]:
    """One platform for every e2e test, stopped when they are done (before other packages)."""
    given = os.environ.get(_GATEWAY_VARIABLE)
    if given:
        prometheus = os.environ.get(_PROMETHEUS_VARIABLE, _DEFAULT_PROMETHEUS_URL)
        yield Platform(given.rstrip("/"), os.environ.get(_REPLAY_VARIABLE), prometheus)
        return
    if _healthy(_DEFAULT_GATEWAY_URL):
        # Someone's `make up` is running: test it, and leave it to them to stop.
        yield Platform(_DEFAULT_GATEWAY_URL, _DEFAULT_REPLAY_URL)
        return
    stack_was_up = _stack_is_up()
    started = _platform("up", "--detach", timeout_s=_UP_TIMEOUT_S)
    if started.returncode != 0:
        pytest.fail(f"`finplat up --detach` failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield Platform(_DEFAULT_GATEWAY_URL, _DEFAULT_REPLAY_URL)
    finally:
        args = ["--keep-stack"] if stack_was_up else []
        stopped = _platform("down", *args, timeout_s=_DOWN_TIMEOUT_S)
        assert stopped.returncode == 0, stopped.stderr


@pytest.fixture
def gateway(platform: Platform) -> Iterator[httpx.Client]:
    """An HTTP client of the gateway, as any REST user would have."""
    with httpx.Client(base_url=platform.gateway_url, timeout=30) as client:
        yield client

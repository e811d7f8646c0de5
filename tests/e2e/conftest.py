"""The platform for end-to-end tests: the one named in the environment, or one started here.

With FINPLAT_E2E_GATEWAY_URL set (and optionally FINPLAT_E2E_REPLAY_URL,
FINPLAT_E2E_PROMETHEUS_URL, FINPLAT_E2E_PRICE_GRPC and FINPLAT_E2E_BACKTEST_GRPC), the tests use
that platform as it is. Otherwise the fixture runs `finplat up --detach` as a platform of the
tests' own: its own free ports, Kafka topics, consumer group, Redis key prefix, InfluxDB bucket,
state files, logs and pid files, all removed afterwards. So a platform the user runs with
`make up` keeps running untouched beside it, and never sees a test's data. The native stack
is shared: one already running (the user's, another session's) is left running. A platform
that cannot start fails the tests: they never skip.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.kafka.admin import delete_topic
from finplat.kafka.errors import KafkaAdapterError
from finplat.stack.process import free_ports
from tests.paths import FINPLAT, REPO_ROOT
from tests.stores import delete_keys, influx_bucket

_GATEWAY_VARIABLE = "FINPLAT_E2E_GATEWAY_URL"
_REPLAY_VARIABLE = "FINPLAT_E2E_REPLAY_URL"
_PROMETHEUS_VARIABLE = "FINPLAT_E2E_PROMETHEUS_URL"
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
    run_dir: Path | None = None
    """Pid files of the platform these tests started (None for one named in the environment)."""
    up_log: Path | None = None
    """What its `finplat up` printed and logged, restarts included."""

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


@dataclass(frozen=True)
class TestRun:
    """Everything a test platform owns, none of it the user's: ports, topics, stores, files."""

    id: str
    gateway_port: int
    replay_port: int
    prometheus_port: int
    price_grpc_port: int
    price_metrics_port: int
    backtest_grpc_port: int
    backtest_metrics_port: int

    @classmethod
    def new(cls) -> "TestRun":
        return cls(uuid.uuid4().hex[:12], *free_ports(7))

    @property
    def topic(self) -> str:
        return f"e2e-{self.id}-price-updates"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic}-dlq"

    @property
    def redis_prefix(self) -> str:
        return f"e2e-{self.id}"

    @property
    def bucket(self) -> str:
        return f"e2e-{self.id}"

    def environment(self, root: Path) -> dict[str, str]:
        """The variables that aim `finplat up` (and every command a test runs) at this run."""
        return {
            "FINPLAT_GATEWAY_PORT": str(self.gateway_port),
            "FINPLAT_REPLAY_PORT": str(self.replay_port),
            "FINPLAT_PLATFORM_PROMETHEUS_PORT": str(self.prometheus_port),
            "FINPLAT_PRICE_GRPC_PORT": str(self.price_grpc_port),
            "FINPLAT_PRICE_METRICS_PORT": str(self.price_metrics_port),
            "FINPLAT_BACKTEST_GRPC_PORT": str(self.backtest_grpc_port),
            "FINPLAT_BACKTEST_METRICS_PORT": str(self.backtest_metrics_port),
            "FINPLAT_KAFKA_TOPIC": self.topic,
            "FINPLAT_KAFKA_DEAD_LETTER_TOPIC": self.dead_letter_topic,
            "FINPLAT_BACKTEST_CONSUMER_GROUP_ID": f"e2e-{self.id}",
            "FINPLAT_BACKTEST_RESULTS_PATH": str(root / "backtest" / "results.sqlite3"),
            "FINPLAT_BACKTEST_CONSUMER_STATE_PATH": str(root / "backtest" / "consumer.sqlite3"),
            "FINPLAT_REDIS_KEY_PREFIX": self.redis_prefix,
            "FINPLAT_INFLUX_BUCKET": self.bucket,
            "FINPLAT_PLATFORM_LOG_DIR": str(root / "log"),
            "FINPLAT_PLATFORM_RUN_DIR": str(root / "run"),
            "FINPLAT_PLATFORM_PROMETHEUS_DIR": str(root / "prometheus"),
            # As the README starts it: the example user strategy served beside the built-ins.
            "FINPLAT_BACKTEST_STRATEGY_DIRS": json.dumps([str(REPO_ROOT / "examples/strategies")]),
        }


# Chosen when the tests are collected: the grpcurl tests read the gRPC addresses at import.
TEST_RUN = TestRun.new()


def _external() -> bool:
    return bool(os.environ.get(_GATEWAY_VARIABLE))


def price_grpc_address() -> str:
    """The price service under test: FINPLAT_E2E_PRICE_GRPC, else this run's own port (the
    default port with a platform named in the environment)."""
    port = 50051 if _external() else TEST_RUN.price_grpc_port
    return os.environ.get("FINPLAT_E2E_PRICE_GRPC", f"127.0.0.1:{port}")


def backtest_grpc_address() -> str:
    """The backtest service under test, as `price_grpc_address` finds it."""
    port = 50052 if _external() else TEST_RUN.backtest_grpc_port
    return os.environ.get("FINPLAT_E2E_BACKTEST_GRPC", f"127.0.0.1:{port}")


def _run(*command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def _platform(command: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, "-c", _PLATFORM_CLI.format(command), *args, timeout_s=timeout_s)


def _stack_is_up() -> bool:
    return _run(str(FINPLAT), "stack", "status", timeout_s=60).returncode == 0


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """`variables` set in this process (and so in every command a test runs) for a while."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _foreground_up(log: Path) -> Iterator[Path]:
    """`finplat up` running until the end of the block, its output in `log` (yielded)."""
    ready = "Ctrl-C stops everything."
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", _PLATFORM_CLI.format("up")],
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + _UP_TIMEOUT_S
        while ready not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`finplat up` did not get ready:\n{log.read_text()}")
            time.sleep(0.2)
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(_DOWN_TIMEOUT_S)
        assert code == 0, log.read_text()


@contextmanager
def _own_stores(run: TestRun) -> Iterator[None]:
    """The run's bucket for its lifetime; its topics and Redis keys removed afterwards."""
    with influx_bucket(InfluxSettings(), run.bucket):
        try:
            yield
        finally:
            for topic in (run.topic, run.dead_letter_topic):
                # A platform that failed to start may not have made them.
                with contextlib.suppress(KafkaAdapterError):
                    delete_topic(KafkaSettings(), topic)
            delete_keys(RedisSettings().url, run.redis_prefix)


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform for every e2e test, stopped when they are done (before other packages)."""
    given = os.environ.get(_GATEWAY_VARIABLE)
    if given:
        prometheus = os.environ.get(_PROMETHEUS_VARIABLE, _DEFAULT_PROMETHEUS_URL)
        yield Platform(given.rstrip("/"), os.environ.get(_REPLAY_VARIABLE), prometheus)
        return
    stack_was_up = _stack_is_up()
    if not stack_was_up:
        started = _run(str(FINPLAT), "stack", "up", timeout_s=_UP_TIMEOUT_S)
        if started.returncode != 0:
            pytest.fail(f"`finplat stack up` failed:\n{started.stdout}\n{started.stderr}")
    root = tmp_path_factory.mktemp("platform")
    try:
        # `finplat up` in the foreground, as `make up` runs it: its supervisor restarts a child
        # that dies, which the fault tests count on; SIGTERM stops it all (the stack stays).
        with (
            _own_stores(TEST_RUN),
            _environment(TEST_RUN.environment(root)),
            _foreground_up(root / "up.log") as running,
        ):
            yield Platform(
                f"http://127.0.0.1:{TEST_RUN.gateway_port}",
                f"http://127.0.0.1:{TEST_RUN.replay_port}",
                f"http://127.0.0.1:{TEST_RUN.prometheus_port}",
                run_dir=root / "run",
                up_log=running,
            )
    finally:
        if not stack_was_up:
            assert _run(str(FINPLAT), "stack", "down", timeout_s=_DOWN_TIMEOUT_S).returncode == 0


@pytest.fixture
def gateway(platform: Platform) -> Iterator[httpx.Client]:
    """An HTTP client of the gateway, as any REST user would have."""
    with httpx.Client(base_url=platform.gateway_url, timeout=30) as client:
        yield client

"""`finplat up` / `finplat down` with the real services, on free ports and a working directory
of their own, against the session stack (which they are told not to manage, so it stays up).

Each platform gets its own Kafka topic, Redis key prefix, InfluxDB bucket and consumer group, so
it never mixes with a developer's platform or the e2e tests' one.
"""

import functools
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from finplat.core.connections import InfluxSettings, KafkaSettings
from finplat.kafka.admin import ensure_topic
from finplat.stack.process import free_ports, is_alive, port_is_free
from tests.support import eventually
from tests.unit.platform.helpers import pids_in_session

pytestmark = pytest.mark.integration

# The platform commands on their own, so these tests do not depend on the root CLI.
_CLI = "from finplat.platform.cli import {0}; {0}(prog_name='finplat {0}')"
_PORT_SETTINGS = (
    "FINPLAT_REPLAY_PORT",
    "FINPLAT_PRICE_GRPC_PORT",
    "FINPLAT_PRICE_METRICS_PORT",
    "FINPLAT_BACKTEST_GRPC_PORT",
    "FINPLAT_BACKTEST_METRICS_PORT",
    "FINPLAT_GATEWAY_PORT",
    "FINPLAT_PLATFORM_PROMETHEUS_PORT",
)
_TIMEOUT_S = 180


@dataclass(frozen=True)
class IsolatedPlatform:
    """A platform configuration with its own directory, ports and stores."""

    cwd: Path
    ports: dict[str, int]
    env: dict[str, str]

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`finplat COMMAND ARGS` in the platform's directory, whatever its exit code."""
        return subprocess.run(
            [sys.executable, "-c", _CLI.format(command), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )

    def child_pids(self) -> dict[str, int]:
        """Pids in the pid files."""
        return {
            path.stem: int(path.read_text().split()[0])
            for path in (self.cwd / "var" / "run").glob("*.pid")
        }

    def gateway_url(self) -> str:
        """Where this platform's gateway listens."""
        return f"http://127.0.0.1:{self.ports['FINPLAT_GATEWAY_PORT']}"


@pytest.fixture
def platform(
    tmp_path: Path, kafka_settings: KafkaSettings, influx_settings: InfluxSettings
) -> Iterator[IsolatedPlatform]:
    topic = f"test-platform-{uuid.uuid4().hex}"
    ensure_topic(kafka_settings, topic, partitions=1)
    ports = dict(zip(_PORT_SETTINGS, free_ports(len(_PORT_SETTINGS)), strict=True))
    env = {
        **os.environ,
        **{name: str(port) for name, port in ports.items()},
        "FINPLAT_PLATFORM_MANAGE_STACK": "false",
        "FINPLAT_KAFKA_TOPIC": topic,
        "FINPLAT_REDIS_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        "FINPLAT_INFLUX_BUCKET": influx_settings.bucket,
        "FINPLAT_BACKTEST_CONSUMER_GROUP_ID": topic,
    }
    isolated = IsolatedPlatform(tmp_path, ports, env)
    try:
        yield isolated
    finally:
        isolated.run("down")  # whatever a failed test left running


def _session_pids(platform: IsolatedPlatform) -> list[int]:
    return [pid for leader in platform.child_pids().values() for pid in pids_in_session(leader)]


def _answers(url: str) -> bool | None:
    ok = httpx.get(url, timeout=5, follow_redirects=True).status_code == httpx.codes.OK
    return True if ok else None


def _scrape_urls(prometheus_url: str) -> set[str]:
    response = httpx.get(f"{prometheus_url}/api/v1/targets", timeout=5)
    response.raise_for_status()
    return {target["scrapeUrl"] for target in response.json()["data"]["activeTargets"]}


def test_down_leaves_no_process_behind(platform: IsolatedPlatform) -> None:
    started = platform.run("up", "--detach")
    assert started.returncode == 0, started.stderr
    assert httpx.get(f"{platform.gateway_url()}/health", timeout=5).status_code == httpx.codes.OK
    # Every address the summary prints answers (the latest price once the first update is in).
    printed = set(re.findall(r"http://127\.0\.0\.1:\d+[^\s')]*", started.stdout))
    assert f"{platform.gateway_url()}/" in printed
    for url in sorted(printed):
        eventually(functools.partial(_answers, url), timeout_s=30)
    pids = _session_pids(platform)
    assert set(platform.child_pids()) == {"replay", "price", "backtest", "gateway", "prometheus"}
    # Prometheus scrapes this platform's own ports, not the defaults of deploy/prometheus.
    expected = {
        f"http://127.0.0.1:{platform.ports[name]}/metrics"
        for name in (
            "FINPLAT_PRICE_METRICS_PORT",
            "FINPLAT_BACKTEST_METRICS_PORT",
            "FINPLAT_GATEWAY_PORT",
        )
    }
    prometheus = f"http://127.0.0.1:{platform.ports['FINPLAT_PLATFORM_PROMETHEUS_PORT']}"
    eventually(lambda: True if _scrape_urls(prometheus) == expected else None, timeout_s=30)

    stopped = platform.run("down")

    assert stopped.returncode == 0, stopped.stderr
    assert [pid for pid in pids if is_alive(pid)] == []
    assert platform.child_pids() == {}
    assert all(port_is_free("127.0.0.1", port) for port in platform.ports.values())
    for name in ("replay", "price", "backtest", "gateway", "backfill", "prometheus"):
        assert (platform.cwd / "var" / "log" / f"{name}.log").stat().st_size > 0


def test_taken_port_gives_a_clear_message_and_starts_nothing(
    platform: IsolatedPlatform,
) -> None:
    port = platform.ports["FINPLAT_GATEWAY_PORT"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()

        started = platform.run("up", "--detach")

    assert started.returncode != 0
    assert f"127.0.0.1:{port} (gateway HTTP) is taken by pid {os.getpid()}" in started.stderr
    assert "set FINPLAT_GATEWAY_PORT" in started.stderr
    assert not (platform.cwd / "var" / "log").exists()


def test_sigterm_on_a_foreground_up_stops_everything(platform: IsolatedPlatform) -> None:
    output = platform.cwd / "up.out"
    with output.open("w") as sink:
        up = subprocess.Popen(
            [sys.executable, "-c", _CLI.format("up")],
            cwd=platform.cwd,
            env=platform.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        eventually(
            lambda: True if "Ctrl-C stops everything" in output.read_text() else None,
            timeout_s=_TIMEOUT_S,
            interval_s=0.2,
        )
        pids = _session_pids(platform)

        up.send_signal(signal.SIGTERM)

        assert up.wait(timeout=120) == 0, output.read_text()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert pids
    assert [pid for pid in pids if is_alive(pid)] == []
    assert platform.child_pids() == {}

"""`finplat stack` against real servers, on ports and a data dir of its own.

The stack under test never shares ports or pid files with a developer's stack or the session
stack of the other integration tests; the download/build cache is shared, so only a cold
machine pays for Maven and the InfluxDB build.
"""

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from finplat.stack.process import free_ports

pytestmark = pytest.mark.integration

_COMPONENTS = ("kafka", "registry", "redis", "influxdb", "postgres")
_PORT_SETTINGS = (
    "FINPLAT_STACK_KAFKA_PORT",
    "FINPLAT_STACK_KAFKA_CONTROLLER_PORT",
    "FINPLAT_STACK_KAFKA_SASL_SSL_PORT",
    "FINPLAT_STACK_REGISTRY_PORT",
    "FINPLAT_STACK_REGISTRY_MANAGEMENT_PORT",
    "FINPLAT_STACK_REDIS_PORT",
    "FINPLAT_STACK_INFLUXDB_PORT",
    "FINPLAT_STACK_POSTGRES_PORT",
)
# The stack group on its own, so these tests do not depend on how the root CLI registers it.
_CLI = "from finplat.stack.cli import stack; stack(prog_name='finplat stack')"
_EXIT_SOME_DOWN = 3
# A cold cache builds InfluxDB from source (10-20 min on 2 cores) before anything answers.
_UP_TIMEOUT_S = 3600


@dataclass(frozen=True)
class IsolatedStack:
    """A `finplat stack` with its own data dir and free ports."""

    data_dir: Path
    ports: dict[str, int]
    env: dict[str, str]

    def run(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `finplat stack ARGS` and return its result, whatever the exit code."""
        return subprocess.run(
            [sys.executable, "-c", _CLI, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def pids(self) -> dict[str, int]:
        """Pids recorded in the pid files."""
        run_dir = self.data_dir / "run"
        return {
            name: int((run_dir / f"{name}.pid").read_text().split()[0])
            for name in _COMPONENTS
            if (run_dir / f"{name}.pid").exists()
        }


def _live_processes() -> dict[int, str]:
    """Pid and command line of every process that has not exited, as `ps` shows them."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    live = {}
    for line in listing.splitlines():
        pid, stat, *args = line.split(None, 2)
        if not stat.startswith("Z"):
            live[int(pid)] = args[0] if args else ""
    return live


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def isolated() -> Iterator[IsolatedStack]:
    """An isolated stack definition; whatever it started is stopped, and its data removed.

    Not under pytest's tmp_path, which only its owner may enter: run as root, PostgreSQL runs as
    the postgres user and would keep its data in that user's home, outliving the test."""
    ports = dict(zip(_PORT_SETTINGS, free_ports(len(_PORT_SETTINGS)), strict=True))
    with tempfile.TemporaryDirectory(prefix="finplat-stack-cli-") as name:
        os.chmod(name, 0o711)
        data_dir = Path(name) / "stack"
        env = {
            **os.environ,
            "FINPLAT_STACK_DATA_DIR": str(data_dir),
            **{name: str(port) for name, port in ports.items()},
        }
        stack = IsolatedStack(data_dir, ports, env)
        yield stack
        stack.run("down")


def test_status_reports_every_server_down_when_nothing_runs(isolated: IsolatedStack) -> None:
    result = isolated.run("status")

    assert result.returncode == _EXIT_SOME_DOWN, result.stderr
    states = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert states == dict.fromkeys(_COMPONENTS, "down")


def test_up_names_a_taken_port_and_its_holder(isolated: IsolatedStack) -> None:
    port = isolated.ports["FINPLAT_STACK_REDIS_PORT"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()

        result = isolated.run("up")

    assert result.returncode == 1
    assert f"127.0.0.1:{port} (Redis) is taken by pid {os.getpid()}" in result.stderr
    assert "FINPLAT_STACK_REDIS_PORT" in result.stderr
    # The check comes before anything starts.
    assert isolated.pids() == {}
    assert isolated.run("status").returncode == _EXIT_SOME_DOWN


@pytest.mark.timeout(_UP_TIMEOUT_S + 300)
def test_up_twice_is_harmless_and_down_leaves_no_process(isolated: IsolatedStack) -> None:
    first = isolated.run("up", timeout_s=_UP_TIMEOUT_S)
    assert first.returncode == 0, first.stderr
    pids = isolated.pids()
    assert set(pids) == set(_COMPONENTS)
    assert isolated.run("status").returncode == 0

    second = isolated.run("up")

    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already running") == len(_COMPONENTS)
    assert isolated.pids() == pids
    redis_log = isolated.run("logs", "redis", "-n", "20")
    assert "Ready to accept connections" in redis_log.stdout

    stopped = isolated.run("down")

    assert stopped.returncode == 0, stopped.stderr
    live = _live_processes()
    assert not set(pids.values()) & set(live), f"still running: {pids}"
    assert not [args for args in live.values() if str(isolated.data_dir) in args]
    assert all(_port_free(port) for port in isolated.ports.values())
    assert isolated.pids() == {}
    assert isolated.run("status").returncode == _EXIT_SOME_DOWN


def test_down_is_harmless_when_nothing_runs(isolated: IsolatedStack) -> None:
    result = isolated.run("down")

    assert result.returncode == 0, result.stderr
    assert "nothing was running" in result.stdout

"""The stack's PostgreSQL against the real server, on a port and a data dir of its own.

The component is driven the way `Stack.up` drives it (launch, spawn, wait for the probe,
configure), without the other servers of the stack.
"""

import os
import pwd
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow
from pydantic import SecretStr

from finplat.stack.postgres import Postgres
from finplat.stack.process import StackDirs, free_ports, running_pid, spawn, stop, wait_ready
from finplat.stack.settings import StackSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def stack_dir() -> Iterator[Path]:
    """A data dir the postgres user can enter when the tests run as root.

    pytest's tmp_path lies under a directory only its owner may enter, and as root the server
    runs as the postgres system user.
    """
    with tempfile.TemporaryDirectory(prefix="finplat-pg-") as name:
        os.chmod(name, 0o711)
        yield Path(name) / "stack"


def _start(postgres: Postgres, report: list[str]) -> "subprocess.Popen[bytes]":
    launch = postgres.launch(report.append)
    process = spawn(postgres.dirs, postgres.name, launch)
    try:
        wait_ready(
            postgres.name,
            postgres.probe,
            lambda: None if process.poll() is None else f"exited with code {process.returncode}",
            postgres.dirs.log(postgres.name),
            postgres.settings.start_timeout_s,
        )
        postgres.configure(report.append)
    except BaseException:
        _stop(postgres, process)
        raise
    return process


def _stop(postgres: Postgres, process: "subprocess.Popen[bytes]") -> None:
    first = {process.pid: postgres.stop_signal}
    assert stop([process.pid], postgres.settings.stop_timeout_s, first) == []
    # Exit code 0: a clean shutdown, not the SIGKILL after the timeout.
    assert process.wait(timeout=5) == 0


def _connect(settings: StackSettings, password: SecretStr) -> psycopg.Connection[TupleRow]:
    return psycopg.connect(
        host=settings.host,
        port=settings.postgres_port,
        user=settings.postgres_username,
        password=password.get_secret_value(),
        dbname=settings.postgres_database,
        connect_timeout=5,
    )


def test_postgres_keeps_its_tables_across_a_restart_and_wants_the_password(
    stack_dir: Path,
) -> None:
    settings = StackSettings(
        data_dir=stack_dir, postgres_port=free_ports()[0], start_timeout_s=30, stop_timeout_s=10
    )
    postgres = Postgres(settings, StackDirs(settings.data_dir))
    first_start: list[str] = []

    process = _start(postgres, first_start)
    try:
        # The pid file names the server itself, which writes its own pid into postmaster.pid.
        postmaster_pid = (stack_dir / "postgres" / "data" / "postmaster.pid").read_text()
        assert running_pid(postgres.dirs, "postgres") == process.pid
        assert int(postmaster_pid.split()[0]) == process.pid
        runs_as = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
        assert Path(f"/proc/{process.pid}").stat().st_uid == runs_as
        with _connect(settings, settings.postgres_password) as connection:
            connection.execute("CREATE TABLE results (run text PRIMARY KEY, sharpe float8)")
            connection.execute("INSERT INTO results VALUES (%s, %s)", ("run-1", 1.25))
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            _connect(settings, SecretStr("not-the-password")).close()
    finally:
        _stop(postgres, process)
    assert running_pid(postgres.dirs, "postgres") is None

    second_start: list[str] = []
    process = _start(postgres, second_start)
    try:
        with _connect(settings, settings.postgres_password) as connection:
            rows = connection.execute("SELECT run, sharpe FROM results").fetchall()
    finally:
        _stop(postgres, process)

    assert rows == [("run-1", 1.25)]
    assert any("creating the database cluster" in line for line in first_start)
    assert any("creating database finplat" in line for line in first_start)
    assert second_start == []
    assert postgres.address() == (
        f"postgresql://finplat@127.0.0.1:{settings.postgres_port}/finplat"
    )

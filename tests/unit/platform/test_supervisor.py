"""The supervisor's start, readiness wait, stop and cleanup, on fake child processes."""

import socket
from pathlib import Path

import pytest

from finplat.platform.errors import PlatformError
from finplat.platform.settings import PlatformSettings
from finplat.platform.supervisor import Supervisor
from finplat.stack.component import Port
from finplat.stack.process import is_alive
from tests.unit.platform.fakes import (
    FakeStack,
    fake_job,
    fake_never_ready,
    fake_plan,
    fake_server,
    quiet,
)
from tests.unit.platform.helpers import pid_in_file, pids_in_session


def test_up_starts_every_child_with_pid_file_and_log(
    supervisor: Supervisor, settings: PlatformSettings, tmp_path: Path
) -> None:
    plan = fake_plan([fake_server("fake-feed", tmp_path)], [fake_server("fake-api", tmp_path)])

    statuses = supervisor.up(plan, quiet)

    assert [s.name for s in statuses] == ["fake-feed", "fake-api"]
    for status in statuses:
        assert status.detail.startswith("ready in ")
        assert is_alive(status.pid)
        assert pid_in_file(settings.run_dir, status.name) == status.pid
        assert "fake server starting" in (settings.log_dir / f"{status.name}.log").read_text()


def test_down_stops_every_child_and_removes_pid_files(
    supervisor: Supervisor, settings: PlatformSettings, tmp_path: Path
) -> None:
    plan = fake_plan([fake_server("fake-a", tmp_path), fake_server("fake-b", tmp_path)])
    pids = [s.pid for s in supervisor.up(plan, quiet)]

    stopped = supervisor.down(quiet)

    assert sorted(pid for group in stopped.values() for pid in group) == sorted(pids)
    assert not any(is_alive(pid) for pid in pids)
    assert list(settings.run_dir.glob("*.pid")) == []


def test_down_also_stops_what_a_child_forked(supervisor: Supervisor, tmp_path: Path) -> None:
    [status] = supervisor.up(fake_plan([fake_server("fake-forker", tmp_path, flags="FORK")]), quiet)
    assert len(pids_in_session(status.pid)) == 2  # the child and its grandchild

    supervisor.down(quiet)

    assert pids_in_session(status.pid) == []


def test_down_kills_a_child_that_ignores_sigterm(supervisor: Supervisor, tmp_path: Path) -> None:
    [status] = supervisor.up(
        fake_plan([fake_server("fake-stubborn", tmp_path, flags="IGNORE")]), quiet
    )

    supervisor.down(quiet)

    assert not is_alive(status.pid)


def test_child_exiting_while_starting_fails_up_and_stops_the_others(
    supervisor: Supervisor, settings: PlatformSettings, tmp_path: Path
) -> None:
    healthy = fake_server("fake-ok", tmp_path)
    broken = fake_server("fake-broken", tmp_path, delay_s=0.3, flags="EXIT")

    with pytest.raises(PlatformError) as failure:
        supervisor.up(fake_plan([healthy], [broken]), quiet)

    message = str(failure.value)
    assert "fake-broken exited with code 3 while starting" in message
    assert "fake server giving up" in message  # the end of its log
    assert list(settings.run_dir.glob("*.pid")) == []
    assert not is_alive(int((tmp_path / "fake-ok.ready").read_text()))


def test_child_never_ready_times_out_naming_the_probe(
    settings: PlatformSettings, stack: FakeStack, tmp_path: Path
) -> None:
    impatient = Supervisor(settings.model_copy(update={"start_timeout_s": 0.5}), stack)

    with pytest.raises(PlatformError, match=r"fake-silent not ready after 0.5 s \(never\)"):
        impatient.up(fake_plan([fake_never_ready("fake-silent")]), quiet)

    assert list(settings.run_dir.glob("*.pid")) == []


def test_one_shot_job_succeeds_and_leaves_no_pid_file(
    supervisor: Supervisor, settings: PlatformSettings, tmp_path: Path
) -> None:
    plan = fake_plan([fake_server("fake-api", tmp_path), fake_job("fake-job", 0)])

    statuses = supervisor.up(plan, quiet)

    assert statuses[1].detail.startswith("done in ")
    assert not (settings.run_dir / "fake-job.pid").exists()


def test_one_shot_job_failing_fails_up(supervisor: Supervisor, tmp_path: Path) -> None:
    plan = fake_plan([fake_server("fake-api", tmp_path), fake_job("fake-job", 2)])

    with pytest.raises(PlatformError, match="fake-job exited with code 2"):
        supervisor.up(plan, quiet)


def test_second_up_keeps_running_children(supervisor: Supervisor, tmp_path: Path) -> None:
    plan = fake_plan([fake_server("fake-api", tmp_path)], [fake_job("fake-job", 0)])
    [first, _] = supervisor.up(plan, quiet)

    again = supervisor.up(plan, quiet)

    # A platform found whole has run its jobs already.
    assert [(s.name, s.pid, s.detail) for s in again] == [
        ("fake-api", first.pid, "already running")
    ]


def test_taken_port_is_named_and_nothing_starts(
    supervisor: Supervisor, settings: PlatformSettings, stack: FakeStack, tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        child = fake_server(
            "fake-http", tmp_path, ports=(Port(port, "fake HTTP", "FAKE_HTTP_PORT"),)
        )

        with pytest.raises(PlatformError) as failure:
            supervisor.up(fake_plan([child]), quiet)

    assert f"127.0.0.1:{port} (fake HTTP) is taken by pid" in str(failure.value)
    assert "set FAKE_HTTP_PORT" in str(failure.value)
    assert "up" not in stack.calls
    assert not (settings.log_dir / "fake-http.log").exists()

"""Restarts while the platform runs, on real fake children killed with real signals.

The conftest's supervisors wait 0.1 s before a first restart, doubling, without jitter.
"""

import functools
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from finplat.platform.processes import PlatformDirs
from finplat.platform.settings import PlatformSettings
from finplat.platform.supervisor import Supervisor
from finplat.stack.process import is_alive, owned_processes
from tests.support import eventually
from tests.unit.platform.conftest import MakeSupervisor
from tests.unit.platform.fakes import fake_plan, fake_server, quiet
from tests.unit.platform.helpers import pid_in_file

_TIMEOUT_S = 5.0


@pytest.fixture(autouse=True)
def _log_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """`caplog.records` holds the supervisor's warnings: one per counted exit."""
    caplog.set_level(logging.WARNING, logger="finplat.platform.supervisor")


def _restarted(supervisor: Supervisor, run_dir: Path, name: str, old_pid: int) -> int | None:
    """One `check`; the child's new pid once it has been restarted, else None."""
    assert supervisor.check() is None
    pid = pid_in_file(run_dir, name)
    return pid if pid != old_pid and is_alive(pid) else None


def _dead(pid: int) -> bool | None:
    return True if not is_alive(pid) else None


def test_killed_child_is_restarted_and_the_others_keep_running(
    supervisor: Supervisor,
    settings: PlatformSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    children = [fake_server("fake-a", tmp_path), fake_server("fake-b", tmp_path)]
    first_a, first_b = (status.pid for status in supervisor.up(fake_plan(children), quiet))

    os.kill(first_a, signal.SIGKILL)
    second_a = eventually(
        lambda: _restarted(supervisor, settings.run_dir, "fake-a", first_a), _TIMEOUT_S
    )

    assert pid_in_file(settings.run_dir, "fake-b") == first_b
    assert is_alive(first_b)
    assert is_alive(second_a)
    [record] = caplog.records
    assert record.getMessage() == "fake-a killed by SIGKILL; restart 1 in 0.1 s"
    assert (vars(record)["child"], vars(record)["restarts"]) == ("fake-a", 1)
    # The same command again, its output appended to the same log.
    log = settings.log_dir / "fake-a.log"
    eventually(lambda: log.read_text().count("fake server starting") == 2 or None, _TIMEOUT_S)


def test_backoff_doubles_between_consecutive_crashes(
    supervisor: Supervisor,
    settings: PlatformSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [status] = supervisor.up(fake_plan([fake_server("fake-a", tmp_path)]), quiet)
    pid, waited = status.pid, []

    for _ in range(3):
        killed_at, old = time.monotonic(), pid
        os.kill(old, signal.SIGKILL)
        restarted = functools.partial(_restarted, supervisor, settings.run_dir, "fake-a", old)
        pid = eventually(restarted, _TIMEOUT_S)
        waited.append(time.monotonic() - killed_at)

    assert [vars(r)["delay_s"] for r in caplog.records] == [0.1, 0.2, 0.4]
    assert [vars(r)["restarts"] for r in caplog.records] == [1, 2, 3]
    # Each restart waited its backoff at least, counted from the kill.
    assert [w >= d for w, d in zip(waited, [0.1, 0.2, 0.4], strict=True)] == [True] * 3


def test_crash_loop_beyond_the_limit_stops_naming_the_child_and_how_it_ended(
    make_supervisor: MakeSupervisor, settings: PlatformSettings, tmp_path: Path
) -> None:
    supervisor = make_supervisor(restart_max=1, restart_window_s=60)
    [status] = supervisor.up(fake_plan([fake_server("fake-a", tmp_path)]), quiet)
    os.kill(status.pid, signal.SIGKILL)
    second = eventually(
        lambda: _restarted(supervisor, settings.run_dir, "fake-a", status.pid), _TIMEOUT_S
    )

    os.kill(second, signal.SIGKILL)
    reason = eventually(supervisor.check, _TIMEOUT_S)

    assert reason.startswith(
        "fake-a killed by SIGKILL; not restarted: more than FINPLAT_PLATFORM_RESTART_MAX=1 "
        "restarts within FINPLAT_PLATFORM_RESTART_WINDOW_S=60 s (restarts in this run: 1); "
        f"log {settings.log_dir / 'fake-a.log'}:"
    )
    assert "fake server starting" in reason  # the end of its log
    assert pid_in_file(settings.run_dir, "fake-a") == second  # no third one


@pytest.mark.timeout(_TIMEOUT_S)  # `watch` returns only once it gives up
def test_restart_max_zero_stops_at_the_first_exit(
    make_supervisor: MakeSupervisor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = make_supervisor(restart_max=0)
    [status] = supervisor.up(fake_plan([fake_server("fake-mortal", tmp_path)]), quiet)

    os.kill(status.pid, signal.SIGKILL)

    assert supervisor.watch().startswith(
        "fake-mortal killed by SIGKILL; not restarted: more than FINPLAT_PLATFORM_RESTART_MAX=0"
    )
    assert caplog.records == []


def test_child_stopped_by_finplat_down_elsewhere_is_not_restarted(
    supervisor: Supervisor,
    make_supervisor: MakeSupervisor,
    settings: PlatformSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [status] = supervisor.up(fake_plan([fake_server("fake-a", tmp_path)]), quiet)

    make_supervisor().down(quiet, keep_stack=True)  # `finplat down` in another terminal
    reason = eventually(supervisor.check, _TIMEOUT_S)

    assert reason == "fake-a killed by SIGTERM and `finplat down` has removed its pid file"
    assert list(settings.run_dir.glob("*.pid")) == []
    assert not is_alive(status.pid)
    assert caplog.records == []


def test_exit_is_counted_only_once_another_command_lets_go_of_the_run_dir(
    supervisor: Supervisor,
    settings: PlatformSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [status] = supervisor.up(fake_plan([fake_server("fake-a", tmp_path)]), quiet)

    with PlatformDirs(settings.log_dir, settings.run_dir).lock():  # another `up` or `down`
        os.kill(status.pid, signal.SIGKILL)
        eventually(lambda: _dead(status.pid), _TIMEOUT_S)
        assert supervisor.check() is None
        assert caplog.records == []
    eventually(lambda: _restarted(supervisor, settings.run_dir, "fake-a", status.pid), _TIMEOUT_S)

    assert [vars(r)["restarts"] for r in caplog.records] == [1]


def test_a_child_restarted_by_another_watch_is_adopted_not_started_twice(
    make_supervisor: MakeSupervisor,
    settings: PlatformSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plan = fake_plan([fake_server("fake-a", tmp_path)])
    first, second = make_supervisor(), make_supervisor()  # two `finplat up` on one run dir
    [status] = first.up(plan, quiet)
    second.up(plan, quiet)

    os.kill(status.pid, signal.SIGKILL)
    restarted = eventually(
        lambda: _restarted(first, settings.run_dir, "fake-a", status.pid), _TIMEOUT_S
    )
    assert second.check() is None

    assert owned_processes(PlatformDirs(settings.log_dir, settings.run_dir)) == {
        "fake-a": [restarted]
    }
    assert [vars(r)["restarts"] for r in caplog.records] == [1]

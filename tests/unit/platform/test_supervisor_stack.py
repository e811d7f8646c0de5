"""When the supervisor starts and stops the stack, and when it leaves it alone."""

from pathlib import Path

import pytest

from finplat.platform.errors import PlatformError
from finplat.platform.settings import PlatformSettings
from finplat.platform.supervisor import Supervisor
from tests.unit.platform.fakes import FakeStack, fake_plan, fake_server, quiet


def test_stack_comes_up_before_the_children(
    supervisor: Supervisor, stack: FakeStack, tmp_path: Path
) -> None:
    lines: list[str] = []

    supervisor.up(fake_plan([fake_server("fake-api", tmp_path)]), lines.append)

    assert stack.calls == ["status", "up"]
    assert lines[:2] == ["stack fakedb: starting", "stack fakedb: started in 0.1 s, fake://db"]
    assert lines[2].startswith("fake-api: starting")


def test_down_stops_the_stack_unless_kept(supervisor: Supervisor, stack: FakeStack) -> None:
    supervisor.down(quiet, keep_stack=True)
    assert "down" not in stack.calls

    supervisor.down(quiet)
    assert stack.calls == ["down"]


def test_failed_up_stops_a_stack_it_started(
    supervisor: Supervisor, stack: FakeStack, tmp_path: Path
) -> None:
    broken = fake_server("fake-broken", tmp_path, flags="EXIT")

    with pytest.raises(PlatformError):
        supervisor.up(fake_plan([broken]), quiet)

    assert stack.calls == ["status", "up", "down"]


def test_failed_up_leaves_a_stack_that_was_already_up(
    settings: PlatformSettings, tmp_path: Path
) -> None:
    shared = FakeStack(up_before=True)
    supervisor = Supervisor(settings, shared)

    with pytest.raises(PlatformError):
        supervisor.up(fake_plan([fake_server("fake-broken", tmp_path, flags="EXIT")]), quiet)

    assert "down" not in shared.calls


def test_stack_failure_is_a_platform_error(settings: PlatformSettings, tmp_path: Path) -> None:
    supervisor = Supervisor(settings, FakeStack(fail_up=True))

    with pytest.raises(PlatformError, match="fakedb would not start"):
        supervisor.up(fake_plan([fake_server("fake-api", tmp_path)]), quiet)

    assert not (settings.log_dir / "fake-api.log").exists()


def test_unmanaged_stack_is_never_touched(settings: PlatformSettings, tmp_path: Path) -> None:
    stack = FakeStack()
    supervisor = Supervisor(settings.model_copy(update={"manage_stack": False}), stack)

    supervisor.up(fake_plan([fake_server("fake-api", tmp_path)]), quiet)
    supervisor.down(quiet)

    assert stack.calls == []


def test_up_remembers_whether_it_started_the_stack(
    settings: PlatformSettings, tmp_path: Path
) -> None:
    fresh = Supervisor(settings, FakeStack(up_before=False))
    shared = Supervisor(settings, FakeStack(up_before=True))

    fresh.up(fake_plan([fake_server("fake-a", tmp_path)]), quiet)
    fresh.down(quiet)
    shared.up(fake_plan([fake_server("fake-b", tmp_path)]), quiet)
    shared.down(quiet)

    assert fresh.started_stack
    assert not shared.started_stack

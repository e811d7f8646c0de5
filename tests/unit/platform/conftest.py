"""Supervisors over a temporary log and run dir, with short timeouts and backoffs for the fakes."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from finplat.platform.settings import PlatformSettings
from finplat.platform.supervisor import Supervisor
from tests.unit.platform.fakes import FakeStack, FixedRandom

MakeSupervisor = Callable[..., Supervisor]


@pytest.fixture
def settings(tmp_path: Path) -> PlatformSettings:
    return PlatformSettings(
        log_dir=tmp_path / "log",
        run_dir=tmp_path / "run",
        start_timeout_s=5,
        stop_timeout_s=2,
        probe_interval_s=0.05,
        restart_delay_s=0.1,
        restart_delay_max_s=1,
    )


@pytest.fixture
def stack() -> FakeStack:
    return FakeStack()


@pytest.fixture
def make_supervisor(settings: PlatformSettings, stack: FakeStack) -> Iterator[MakeSupervisor]:
    """Supervisors over `settings` with some fields replaced; restarts without jitter."""
    made: list[Supervisor] = []

    def make(**update: object) -> Supervisor:
        made.append(Supervisor(settings.model_copy(update=update), stack, FixedRandom(0.0)))
        return made[-1]

    yield make
    for supervisor in made:
        # Whatever a failing test left running: the fakes must not outlive it.
        supervisor.down(lambda _line: None, keep_stack=True)


@pytest.fixture
def supervisor(make_supervisor: MakeSupervisor) -> Supervisor:
    return make_supervisor()

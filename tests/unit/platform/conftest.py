"""A supervisor over a temporary log and run dir, with short timeouts for the fake children."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from finplat.platform.settings import PlatformSettings
from finplat.platform.supervisor import Supervisor
from tests.unit.platform.fakes import FakeStack


@pytest.fixture
def settings(tmp_path: Path) -> PlatformSettings:
    return PlatformSettings(
        log_dir=tmp_path / "log",
        run_dir=tmp_path / "run",
        start_timeout_s=5,
        stop_timeout_s=2,
        probe_interval_s=0.05,
    )


@pytest.fixture
def stack() -> FakeStack:
    return FakeStack()


@pytest.fixture
def supervisor(settings: PlatformSettings, stack: FakeStack) -> Iterator[Supervisor]:
    supervisor = Supervisor(settings, stack)
    try:
        yield supervisor
    finally:
        # Whatever a failing test left running: the fakes must not outlive it.
        supervisor.down(lambda _line: None, keep_stack=True)

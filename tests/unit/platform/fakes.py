"""Fake children and a fake stack for the supervisor tests: real processes (`python -c`), so the
spawning, signals, pid files and process groups under test are the real ones."""

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

from finplat.platform.children import Endpoints, Plan
from finplat.platform.probes import NotReadyError
from finplat.platform.spec import ChildSpec
from finplat.stack.component import Port
from finplat.stack.errors import StackError
from finplat.stack.stack import ComponentStatus, State
from finplat.stack.tools import Report

# Becomes ready by creating a file after a pause, then runs until signalled. With IGNORE set it
# shrugs off SIGTERM (so only SIGKILL ends it); with FORK it leaves a grandchild running.
_SERVER = """
import os, pathlib, signal, subprocess, sys, time
ready, delay, flags = pathlib.Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if "IGNORE" in flags:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "FORK" in flags:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("fake server starting", flush=True)
time.sleep(delay)
if "EXIT" in flags:
    print("fake server giving up", flush=True)
    sys.exit(3)
ready.write_text(str(os.getpid()))
while True:
    time.sleep(1)
"""

ENDPOINTS = Endpoints("http://fake", "fake:1", "fake:2", None, None, None, None, "fake feed")


def fake_plan(*stages: list[ChildSpec]) -> Plan:
    """A plan of fake children, in these start stages."""
    return Plan(stages, ENDPOINTS)


def quiet(_line: str) -> None:
    """A `Report` that drops the progress lines."""


def _probe(ready: Path) -> None:
    if not ready.exists():
        raise NotReadyError(f"{ready.name} not there yet")


def fake_server(
    name: str,
    tmp_path: Path,
    *,
    delay_s: float = 0.1,
    flags: str = "",
    ports: tuple[Port, ...] = (),
) -> ChildSpec:
    """A child that is ready once it has written `<tmp_path>/<name>.ready`."""
    ready = tmp_path / f"{name}.ready"
    argv = [sys.executable, "-c", _SERVER, str(ready), str(delay_s), flags or "-"]
    return ChildSpec(name, argv, {"FAKE_CHILD": name}, ports, lambda: _probe(ready))


def fake_job(name: str, exit_code: int, delay_s: float = 0.1) -> ChildSpec:
    """A one-shot child that exits with `exit_code` after a pause."""
    script = (
        f"import time, sys; time.sleep({delay_s}); print('fake job done'); sys.exit({exit_code})"
    )
    return ChildSpec(name, [sys.executable, "-c", script])


def fake_never_ready(name: str) -> ChildSpec:
    """A child that runs but never passes its probe."""

    def probe() -> None:
        raise NotReadyError("never")

    return ChildSpec(name, [sys.executable, "-c", "import time; time.sleep(600)"], probe=probe)


class FixedRandom(random.Random):
    """Every draw is `value`: 0.0 takes the jitter out of a backoff, so its waits are exact."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@dataclass
class FakeStack:
    """Records what the supervisor asks of the stack."""

    up_before: bool = False
    fail_up: bool = False
    calls: list[str] = field(default_factory=list)

    def status(self) -> list[ComponentStatus]:
        self.calls.append("status")
        state = State.UP if self.up_before else State.DOWN
        return [ComponentStatus("fakedb", state, "fake://db")]

    def up(self, report: Report) -> list[ComponentStatus]:
        self.calls.append("up")
        if self.fail_up:
            raise StackError("fakedb would not start")
        report("fakedb: starting")
        return [ComponentStatus("fakedb", State.UP, "fake://db", 1, "started in 0.1 s")]

    def down(self, report: Report) -> dict[str, list[int]]:
        self.calls.append("down")
        report("fakedb: stopping")
        return {}

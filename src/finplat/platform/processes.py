"""Child processes of the platform: where their logs and pid files live, waiting on them, and
the budget of their restarts.

Spawning, pid files (pid plus start time, safe against pid reuse), the ownership mark and the
SIGTERM-then-SIGKILL stop are the stack's (`finplat.stack.process`); the platform lays its files
out differently and needs one-shot jobs besides servers.
"""

import contextlib
import logging
import random
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from finplat.core.retry import Backoff
from finplat.platform.errors import PlatformError
from finplat.platform.probes import NotReadyError
from finplat.platform.settings import PlatformSettings
from finplat.platform.spec import ChildSpec
from finplat.stack.process import StackDirs, exclusive, is_alive, tail_text

logger = logging.getLogger(__name__)

_LOG_LINES = 25


class RunDirBusyError(PlatformError):
    """Another `finplat up` or `finplat down` holds the run dir's lock."""


class PlatformDirs(StackDirs):
    """`<log_dir>/<name>.log` and `<run_dir>/<name>.pid`, in the shape `stack.process` uses.

    The ownership mark of a child reads `<name>@<run_dir>`: it never matches the stack's
    (`...@var/stack`), so `down` here and `stack down` each find only their own processes.
    """

    def __init__(self, log_dir: Path, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.root = run_dir.absolute()
        self.logs = log_dir.absolute()
        self.run = run_dir.absolute()

    def pid_names(self) -> list[str]:
        """Names of the children that have a pid file, whatever plan started them."""
        return sorted(path.stem for path in self.run.glob("*.pid"))

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Serialise `up` and `down` on one run dir across processes."""
        return exclusive(
            self.run / "platform.lock",
            RunDirBusyError(
                f"another `finplat up` or `finplat down` is working on {self.run}; "
                "wait for it to finish"
            ),
        )


@dataclass
class Handle:
    """A child this run spawned (`process`) or found running from an earlier run (`pid` only)."""

    pid: int
    started: float
    process: "subprocess.Popen[bytes] | None" = None

    def exit_reason(self) -> str | None:
        """None while it runs; else how it ended (reaping our own child)."""
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return None
            # Popen reports death by a signal as minus its number.
            return f"killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
        return None if is_alive(self.pid) else "exited"

    def reap(self) -> None:
        """Collect our stopped child's exit status, so no zombie stays behind."""
        if self.process is not None and not is_alive(self.pid):
            self.process.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # real-time signals have no name of their own
        return f"signal {number}"


class Restarts:
    """One child's restarts: the backoff before each and the crash-loop limit.

    At most `restart_max` restarts within the last `restart_window_s`, like systemd's
    StartLimitBurst within StartLimitIntervalSec; a run of `restart_reset_after_s` or more
    before an exit starts the backoff over, like Kubernetes' crash-loop backoff.
    """

    def __init__(self, settings: PlatformSettings, rng: random.Random | None = None) -> None:
        self._policy = settings.restart_policy()
        self._backoff = Backoff(self._policy, rng)
        self.limit = settings.restart_max
        self.window_s = settings.restart_window_s
        self._exits: deque[float] = deque()
        self.count = 0
        """Restarts so far."""

    def next_delay_s(self, now: float, uptime_s: float) -> float | None:
        """Count an exit at `now` after `uptime_s` of running: the wait before the restart, or
        None when one more restart would exceed the limit."""
        if uptime_s >= self._policy.reset_after_s:
            self._backoff.reset()
        self._exits.append(now)
        while self._exits[0] <= now - self.window_s:
            self._exits.popleft()
        if len(self._exits) > self.limit:
            return None
        self.count += 1
        return self._backoff.next_delay_s()


def log_excerpt(dirs: PlatformDirs, name: str) -> str:
    """The end of a child's log, for an error message."""
    path = dirs.log(name)
    return f"log {path}:\n{tail_text(path, _LOG_LINES)}"


def wait_ready(
    child: ChildSpec,
    handle: Handle,
    dirs: PlatformDirs,
    timeout_s: float,
    interval_s: float,
) -> None:
    """Probe until the child is ready, or until a one-shot child has succeeded.

    Fails at once when the child ends early, else after `timeout_s` counted from its spawn.
    """
    deadline = handle.started + timeout_s
    last_error = "no answer yet"
    while True:
        ended = handle.exit_reason()
        if child.probe is None:
            if ended == "exited with code 0":
                return
        else:
            try:
                child.probe()
            except NotReadyError as exc:
                last_error = str(exc)
            else:
                return
        if ended is not None:
            raise PlatformError(
                f"{child.name} {ended} while starting; {log_excerpt(dirs, child.name)}"
            )
        if time.monotonic() >= deadline:
            raise PlatformError(
                f"{child.name} not ready after {timeout_s:g} s ({last_error}); "
                f"{log_excerpt(dirs, child.name)}"
            )
        time.sleep(interval_s)

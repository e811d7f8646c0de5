"""`up`, `watch` and `down` of the platform: the stack, then each child in its own session.

Children outlive the `finplat up` that spawned them (own session, output in their log, pid file),
so `up --detach` can return and a later `down` finds them. A failed `up` stops what it started,
leaving things as it found them. While `watch` runs, a child that exits is restarted after a
backoff, the others untouched, until it exits more often than the settings allow.
"""

import contextlib
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from finplat.platform.children import Plan
from finplat.platform.errors import PlatformError
from finplat.platform.processes import (
    Handle,
    PlatformDirs,
    Restarts,
    RunDirBusyError,
    log_excerpt,
    wait_ready,
)
from finplat.platform.settings import PlatformSettings
from finplat.platform.spec import ChildSpec
from finplat.stack.errors import StackError
from finplat.stack.process import (
    Launch,
    owned_processes,
    port_holder,
    port_is_free,
    running_pid,
    spawn,
    stop,
)
from finplat.stack.stack import ComponentStatus, State
from finplat.stack.tools import Report

logger = logging.getLogger(__name__)

# Ports are checked on loopback, where every default binds; a wildcard bind holding the same
# port makes this bind fail too.
_CHECK_HOST = "127.0.0.1"


class StackControl(Protocol):
    """What the supervisor needs of `finplat.stack.stack.Stack` (tests pass a fake)."""

    def up(self, report: Report) -> list[ComponentStatus]: ...

    def down(self, report: Report) -> dict[str, list[int]]: ...

    def status(self) -> list[ComponentStatus]: ...


@dataclass(frozen=True)
class ChildStatus:
    """One child after `up`: its pid, log, and whether this run started it."""

    name: str
    pid: int
    log: str
    detail: str
    running: bool


@dataclass
class _Exit:
    """A child `check` found ended, until it runs again or the platform stops."""

    how: str
    uptime_s: float
    restart_at: float | None = None
    """When to restart it (monotonic clock); None until the exit is counted."""


class Supervisor:
    """Starts, watches and stops the platform described by one PlatformSettings."""

    def __init__(
        self,
        settings: PlatformSettings,
        stack: StackControl | None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.stack = stack if settings.manage_stack else None
        self.dirs = PlatformDirs(settings.log_dir, settings.run_dir)
        self._rng = rng
        self._handles: dict[str, Handle] = {}
        self._specs: dict[str, ChildSpec] = {}
        self._exits: dict[str, _Exit] = {}
        self._restarts: dict[str, Restarts] = {}
        self.started_stack = False
        """True once `up` has started a stack that was not running before."""

    def up(self, plan: Plan, report: Report) -> list[ChildStatus]:
        """Start what is not running, stage by stage, and wait until each child is ready.

        Children still running from an earlier `up` are kept (and probed like new ones); one-shot
        jobs (the history backfill) run only when some server is started anew, since a platform
        found whole has had them run already.
        """
        with self.dirs.lock():
            running = {c.name: running_pid(self.dirs, c.name) for c in plan.children}
            servers = [c for c in plan.children if c.probe is not None]
            any_new = any(running[c.name] is None for c in servers)
            to_start = [
                c for c in plan.children if running[c.name] is None and (c in servers or any_new)
            ]
            self._check_ports(to_start)
            self._specs.update((child.name, child) for child in plan.children)
            stack_was_up = self.stack is None or _all_up(self.stack.status())
            try:
                if self.stack is not None:
                    _stack_up(self.stack, report)
                    self.started_stack = not stack_was_up
                return [
                    status
                    for stage in plan.stages
                    for status in self._start_stage(stage, to_start, running, report)
                ]
            except BaseException:
                # Ctrl-C and SIGTERM included: a half-started platform must not stay behind.
                self._rollback(to_start, stack_was_up, report)
                raise

    def _check_ports(self, to_start: Sequence[ChildSpec]) -> None:
        numbers = Counter(port.number for child in to_start for port in child.ports)
        clashes = sorted(number for number, count in numbers.items() if count > 1)
        if clashes:
            raise PlatformError(f"ports configured for more than one process: {clashes}")
        taken = [
            f"  - {_CHECK_HOST}:{port.number} ({port.role}) is taken by "
            f"{port_holder(port.number)}; stop it or set {port.setting}"
            for child in to_start
            for port in child.ports
            if not port_is_free(_CHECK_HOST, port.number)
        ]
        if taken:
            raise PlatformError("cannot start the platform, ports in use:\n" + "\n".join(taken))

    def _start_stage(
        self,
        stage: Sequence[ChildSpec],
        to_start: Sequence[ChildSpec],
        running: dict[str, int | None],
        report: Report,
    ) -> list[ChildStatus]:
        # Spawn the whole stage first: the children start in parallel, then are waited for.
        for child in stage:
            pid = running[child.name]
            if pid is not None:
                known = self._handles.get(child.name)
                if known is None or known.pid != pid:
                    self._track(child.name, Handle(pid, time.monotonic()))
            elif child in to_start:
                report(f"{child.name}: starting ({self.dirs.log(child.name)})")
                self._track(child.name, self._spawn(child))
        statuses = []
        for child in stage:
            handle = self._handles.get(child.name)
            if handle is None:
                continue
            timeout, interval = self.settings.start_timeout_s, self.settings.probe_interval_s
            wait_ready(child, handle, self.dirs, timeout, interval)
            elapsed = time.monotonic() - handle.started
            reused = running[child.name] is not None
            detail = "already running" if reused else f"ready in {elapsed:.1f} s"
            if child.probe is None:
                detail = f"done in {elapsed:.1f} s"
                self.dirs.pid_file(child.name).unlink(missing_ok=True)
                del self._handles[child.name]
            report(f"{child.name}: {detail}")
            statuses.append(
                ChildStatus(
                    child.name, handle.pid, self._log(child), detail, child.probe is not None
                )
            )
        return statuses

    def _track(self, name: str, handle: Handle) -> None:
        self._handles[name] = handle
        self._exits.pop(name, None)

    def _spawn(self, child: ChildSpec) -> Handle:
        if child.prepare is not None:
            child.prepare()
        launch = Launch(child.argv, cwd=Path.cwd(), env=child.env)
        try:
            process = spawn(self.dirs, child.name, launch)
        except StackError as exc:
            raise PlatformError(str(exc)) from exc
        return Handle(process.pid, time.monotonic(), process)

    def _log(self, child: ChildSpec) -> str:
        path = self.dirs.log(child.name)
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)

    def _rollback(self, to_start: Sequence[ChildSpec], stack_was_up: bool, report: Report) -> None:
        names = {child.name for child in to_start}
        pids = [h.pid for name, h in self._handles.items() if name in names]
        if pids:
            report(f"stopping what this run started (pids {', '.join(map(str, pids))})")
        stop(pids, self.settings.stop_timeout_s)
        for name in names:
            self.dirs.pid_file(name).unlink(missing_ok=True)
            handle = self._handles.pop(name, None)
            if handle is not None:
                handle.reap()
        if self.stack is not None and not stack_was_up:
            _stack_down(self.stack, report)

    def watch(self) -> str:
        """Keep the children started or kept by `up` running, restarting those that exit, until
        one exits too often or the platform is stopped elsewhere; say which child and how."""
        while True:
            reason = self.check()
            if reason is not None:
                return reason
            time.sleep(self.settings.probe_interval_s)

    def check(self) -> str | None:
        """One look at the children: count those that ended and restart each once its backoff
        has passed. Returns why the platform must stop, or None while it goes on."""
        now = time.monotonic()
        for name, handle in self._handles.items():
            how = None if name in self._exits else handle.exit_reason()
            if how is not None:
                self._exits[name] = _Exit(how, now - handle.started)
        waiting = [
            name
            for name, ended in self._exits.items()
            if ended.restart_at is None or ended.restart_at <= now
        ]
        if not waiting:  # the lock only when needed: `finplat down` fails while it is held
            return None
        # Under the lock, a `finplat down` elsewhere is seen whole (never undone by a restart),
        # and the watch of a second `finplat up` does not restart the same child again. While
        # another command holds it, the exits wait: that command may be stopping the platform.
        with contextlib.suppress(RunDirBusyError), self.dirs.lock():
            for name in waiting:
                reason = self._settle(name, now)
                if reason is not None:
                    return reason
        return None

    def _settle(self, name: str, now: float) -> str | None:
        ended = self._exits[name]
        if not self.dirs.pid_file(name).exists():
            return f"{name} {ended.how} and `finplat down` has removed its pid file"
        pid = running_pid(self.dirs, name)
        if pid is not None:  # the watch of another `finplat up` restarted it first
            self._track(name, Handle(pid, now))
            return None
        if ended.restart_at is None:
            return self._count(name, ended, now)
        try:
            self._track(name, self._spawn(self._specs[name]))
        except PlatformError as exc:
            return f"{name} {ended.how} and cannot be restarted: {exc}"
        return None

    def _count(self, name: str, ended: _Exit, now: float) -> str | None:
        restarts = self._restarts.setdefault(name, Restarts(self.settings, self._rng))
        delay_s = restarts.next_delay_s(now, ended.uptime_s)
        if delay_s is None:
            return (
                f"{name} {ended.how}; not restarted: more than FINPLAT_PLATFORM_RESTART_MAX="
                f"{restarts.limit} restarts within FINPLAT_PLATFORM_RESTART_WINDOW_S="
                f"{restarts.window_s:g} s (restarts in this run: {restarts.count}); "
                f"{log_excerpt(self.dirs, name)}"
            )
        logger.warning(
            "%s %s; restart %d in %.1f s",
            name,
            ended.how,
            restarts.count,
            delay_s,
            extra={
                "child": name,
                "exit": ended.how,
                "uptime_s": round(ended.uptime_s, 3),
                "restarts": restarts.count,
                "delay_s": round(delay_s, 3),
            },
        )
        ended.restart_at = now + delay_s
        return None

    def down(self, report: Report, keep_stack: bool = False) -> dict[str, list[int]]:
        """Stop every child of this run dir (pid files and marked strays), then the stack."""
        with self.dirs.lock():
            owned = owned_processes(self.dirs)
            for name in self.dirs.pid_names():
                pid = running_pid(self.dirs, name)
                if pid is not None and pid not in owned.get(name, []):
                    owned.setdefault(name, []).append(pid)
            for name, group in sorted(owned.items()):
                report(f"{name}: stopping pid {', '.join(map(str, group))}")
            survivors = stop([pid for group in owned.values() for pid in group],
                             self.settings.stop_timeout_s)  # fmt: skip
            for handle in self._handles.values():
                handle.reap()
            self._handles.clear()
            self._exits.clear()
            for name in self.dirs.pid_names():
                self.dirs.pid_file(name).unlink(missing_ok=True)
            if survivors:
                raise PlatformError(f"processes still alive after SIGKILL: {survivors}")
        if self.stack is not None and not keep_stack:
            _stack_down(self.stack, report)
        return owned


def _all_up(statuses: Sequence[ComponentStatus]) -> bool:
    return all(status.state is State.UP for status in statuses)


def _stack_up(stack: StackControl, report: Report) -> None:
    try:
        statuses = stack.up(lambda line: report(f"stack {line}"))
    except StackError as exc:
        raise PlatformError(str(exc)) from exc
    for status in statuses:
        report(f"stack {status.name}: {status.detail or status.state.value}, {status.address}")


def _stack_down(stack: StackControl, report: Report) -> None:
    try:
        stack.down(lambda line: report(f"stack {line}"))
    except StackError as exc:
        raise PlatformError(str(exc)) from exc

"""`up`, `down` and `status` across the stack's servers."""

import logging
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from finplat.stack.component import Component
from finplat.stack.errors import StackError
from finplat.stack.influxdb import InfluxDB
from finplat.stack.kafka import kafka_nodes
from finplat.stack.postgres import Postgres
from finplat.stack.process import (
    StackDirs,
    is_alive,
    owned_processes,
    port_holder,
    port_is_free,
    running_pid,
    spawn,
    stop,
    wait_ready,
)
from finplat.stack.redis import Redis
from finplat.stack.registry import Registry
from finplat.stack.settings import StackSettings
from finplat.stack.tools import Report

logger = logging.getLogger(__name__)

_SERVER_TYPES: tuple[type[Component], ...] = (Registry, Redis, InfluxDB, Postgres)
SERVERS: tuple[str, ...] = ("kafka", *(kind.name for kind in _SERVER_TYPES))
"""The kinds of server `only` may name; "kafka" stands for every Kafka node."""


class State(StrEnum):
    """What `status` found for one server."""

    UP = "up"
    DOWN = "down"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class ComponentStatus:
    """One server's state, address and pid, with a word on how it got there."""

    name: str
    state: State
    address: str
    pid: int | None = None
    detail: str = ""


class Stack:
    """The native stack described by one StackSettings."""

    def __init__(
        self, settings: StackSettings | None = None, only: Collection[str] = SERVERS
    ) -> None:
        self.settings = settings or StackSettings()
        self.dirs = StackDirs(self.settings.data_dir)
        unknown = set(only) - set(SERVERS)
        if unknown:
            raise StackError(f"no such servers: {sorted(unknown)}; choose from {SERVERS}")
        kafka = kafka_nodes(self.settings, self.dirs) if "kafka" in only else []
        others = [kind(self.settings, self.dirs) for kind in _SERVER_TYPES if kind.name in only]
        self.components: list[Component] = [*kafka, *others]

    def log_path(self, name: str) -> Path:
        """Log file of one component."""
        return self.dirs.log(name)

    def up(self, report: Report) -> list[ComponentStatus]:
        """Start whatever is not running, in parallel; wait until every server answers.

        If any server fails, the ones this call started are stopped again, so a failed `up`
        leaves the stack as it found it.
        """
        with self.dirs.lock():
            running = {c.name: running_pid(self.dirs, c.name) for c in self.components}
            to_start = [c for c in self.components if running[c.name] is None]
            self._check_prerequisites(to_start)
            self._check_ports(to_start)
            with ThreadPoolExecutor(max_workers=len(self.components)) as pool:
                futures = {
                    c.name: pool.submit(self._bring_up, c, running[c.name], report)
                    for c in self.components
                }
            results, errors = _collect(futures)
            if errors:
                leftovers = self._our_pids()
                pids = [pid for c in to_start for pid in leftovers.get(c.name, [])]
                stop(pids, self.settings.stop_timeout_s)
                for component in to_start:
                    self.dirs.pid_file(component.name).unlink(missing_ok=True)
                raise StackError(
                    "`finplat stack up` failed; servers it had started are stopped again:\n"
                    + "\n".join(errors)
                )
            return [results[c.name] for c in self.components]

    def _check_prerequisites(self, to_start: list[Component]) -> None:
        problems = list(dict.fromkeys(p for c in to_start for p in c.prerequisites()))
        if problems:
            raise StackError(
                "cannot start the stack; install these first:\n"
                + "\n".join(f"  - {problem}" for problem in problems)
            )

    def _check_ports(self, to_start: list[Component]) -> None:
        owners = Counter(port.number for c in self.components for port in c.ports())
        clashes = sorted(number for number, count in owners.items() if count > 1)
        if clashes:
            raise StackError(f"ports configured for more than one server: {clashes}")
        host = self.settings.host
        taken = [
            f"  - {host}:{port.number} ({port.role}) is taken by {port_holder(port.number)}; "
            f"stop it or set {port.setting}"
            for c in to_start
            for port in c.ports()
            if not port_is_free(host, port.number)
        ]
        if taken:
            raise StackError("cannot start the stack, ports in use:\n" + "\n".join(taken))

    def _bring_up(self, component: Component, pid: int | None, report: Report) -> ComponentStatus:
        def say(line: str) -> None:
            report(f"{component.name}: {line}")

        log_path = self.dirs.log(component.name)
        started = time.monotonic()
        try:
            if pid is not None:
                # Possibly still starting after an interrupted `up`: same probe, same deadline.
                wait_ready(
                    component.name,
                    component.probe,
                    _pid_exited(pid),
                    log_path,
                    self.settings.start_timeout_s,
                )
                component.configure(say)
                return ComponentStatus(
                    component.name, State.UP, component.address(), pid, "already running"
                )
            component.install(say)
            launch = component.launch(say)
            say("starting")
            started = time.monotonic()
            process = spawn(self.dirs, component.name, launch)
            wait_ready(
                component.name,
                component.probe,
                _popen_exited(process),
                log_path,
                self.settings.start_timeout_s,
            )
            component.configure(say)
        except OSError as exc:
            raise StackError(f"{component.name}: {exc}") from exc
        elapsed = time.monotonic() - started
        return ComponentStatus(
            component.name,
            State.UP,
            component.address(),
            process.pid,
            f"started in {elapsed:.1f} s",
        )

    def down(self, report: Report) -> dict[str, list[int]]:
        """Stop every server of this data dir (pid files and strays); remove the pid files."""
        with self.dirs.lock():
            owned = self._our_pids()
            pids = [pid for group in owned.values() for pid in group]
            for name, group in owned.items():
                report(f"{name}: stopping pid {', '.join(map(str, group))}")
            signals = {c.name: c.stop_signal for c in self.components}
            first = {pid: signals[name] for name in signals for pid in owned.get(name, [])}
            survivors = stop(pids, self.settings.stop_timeout_s, first)
            # Pid files of servers these settings do not name too (a cluster's nodes, stopped
            # by a `down` without its settings): every process of the data dir was stopped.
            for name in {*owned, *(c.name for c in self.components)}:
                self.dirs.pid_file(name).unlink(missing_ok=True)
            if survivors:
                raise StackError(f"processes still alive after SIGKILL: {survivors}")
            return owned

    def _our_pids(self) -> dict[str, list[int]]:
        """Processes of each component: the one in its pid file plus any marked stray."""
        owned = owned_processes(self.dirs)
        for component in self.components:
            pid = running_pid(self.dirs, component.name)
            if pid is not None and pid not in owned.get(component.name, []):
                owned.setdefault(component.name, []).append(pid)
        return owned

    def status(self) -> list[ComponentStatus]:
        """Each server's state: up only when its process runs and its probe passes."""
        owned = owned_processes(self.dirs)
        with ThreadPoolExecutor(max_workers=len(self.components)) as pool:
            futures = {c.name: pool.submit(self._status, c, owned) for c in self.components}
        return [futures[c.name].result() for c in self.components]

    def _status(self, component: Component, owned: dict[str, list[int]]) -> ComponentStatus:
        pid = running_pid(self.dirs, component.name)
        if pid is None:
            strays = owned.get(component.name, [])
            detail = f"stray pids {strays} without pid file: run `down`" if strays else ""
            return ComponentStatus(component.name, State.DOWN, component.address(), None, detail)
        try:
            component.probe()
        except StackError as exc:
            return ComponentStatus(
                component.name, State.UNHEALTHY, component.address(), pid, str(exc)
            )
        return ComponentStatus(component.name, State.UP, component.address(), pid)


def _collect(
    futures: dict[str, "Future[ComponentStatus]"],
) -> tuple[dict[str, ComponentStatus], list[str]]:
    results: dict[str, ComponentStatus] = {}
    errors: list[str] = []
    for name, future in futures.items():
        try:
            results[name] = future.result()
        except StackError as exc:
            errors.append(f"{name}: {exc}")
        except Exception as exc:
            # Anything else is a bug or an unexpected server answer; it must still lead to the
            # rollback in `up` rather than leave half a stack behind.
            logger.exception("unexpected failure bringing up %s", name)
            errors.append(f"{name}: unexpected {type(exc).__name__}: {exc}")
    return results, errors


def _pid_exited(pid: int) -> Callable[[], str | None]:
    return lambda: None if is_alive(pid) else "exited"


def _popen_exited(process: "subprocess.Popen[bytes]") -> Callable[[], str | None]:
    def exited() -> str | None:
        code = process.poll()
        return None if code is None else f"exited with code {code}"

    return exited

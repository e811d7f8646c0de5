"""Server processes of the stack: spawn detached, find by pid file or mark, stop, probe ports.

A pid file holds the pid and the process's start time: a bare pid could name an unrelated
process after pid reuse. Every spawned process also carries an environment variable naming its
component and data dir, so `down` can find strays whose pid file was lost. That mark is only
a second line of defence: servers that rewrite their process title (Redis) overwrite the
memory /proc/<pid>/environ shows.
"""

import contextlib
import errno
import fcntl
import logging
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from finplat.stack.errors import StackError

logger = logging.getLogger(__name__)

# Outside the FINPLAT_STACK_ settings namespace on purpose: it is a tag, not a setting.
_MARK_VARIABLE = "FINPLAT_OWNED_BY_STACK"
_PROC = Path("/proc")
_LISTEN = "0A"
_POLL_INTERVAL_S = 0.1
_PROBE_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Launch:
    """How to start one server: argv, extra environment, working directory and system user."""

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    """Run the server as this system user, its primary group and no other (needs root); the log
    is opened by us and handed over, so it needs no access to it. None: as ourselves."""


class StackDirs:
    """Layout of the data dir: logs/<component>.log, run/<component>.pid, <component>/..."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir.absolute()
        self.logs = self.root / "logs"
        self.run = self.root / "run"

    def log(self, component: str) -> Path:
        """Log file of one component's process."""
        return self.logs / f"{component}.log"

    def pid_file(self, component: str) -> Path:
        """Pid file of one component's process."""
        return self.run / f"{component}.pid"

    def component(self, component: str) -> Path:
        """Data directory of one component, created on first use."""
        path = self.root / component
        path.mkdir(parents=True, exist_ok=True)
        return path

    def mark(self, component: str) -> str:
        """Value of the ownership variable for one component of this stack."""
        return f"{component}@{self.root}"

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Serialise `up` and `down` on one data dir across processes."""
        return exclusive(
            self.run / "stack.lock",
            StackError(
                f"another `finplat stack` command is working on {self.root}; wait for it to finish"
            ),
        )


@contextlib.contextmanager
def exclusive(path: Path, busy: Exception) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the block; raise `busy` at once if it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise busy from exc
        yield


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state (field 3) on, or None when it does not exist."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name in parentheses may contain spaces; the state follows the last ')'.
    return stat.rsplit(")", 1)[1].split()


def is_alive(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie has)."""
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in {"Z", "X"}


def _start_time(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    fields = proc_stat(pid)
    return fields[19] if fields is not None else None


def _environ(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return raw.decode(errors="replace").split("\0")


def owned_processes(dirs: StackDirs) -> dict[str, list[int]]:
    """Live processes carrying a mark of this data dir, by component, pid files aside."""
    prefix = f"{_MARK_VARIABLE}="
    suffix = f"@{dirs.root}"
    found: dict[str, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        for variable in _environ(pid):
            if variable.startswith(prefix) and variable.endswith(suffix):
                if is_alive(pid):
                    component = variable[len(prefix) : -len(suffix)]
                    found.setdefault(component, []).append(pid)
                break
    return found


def running_pid(dirs: StackDirs, component: str) -> int | None:
    """Pid of the component's running server according to its pid file, if it is still it."""
    pid_file = dirs.pid_file(component)
    try:
        pid_text, started = pid_file.read_text().split()
        pid = int(pid_text)
    except FileNotFoundError:
        return None
    except ValueError:
        logger.warning("ignoring malformed pid file %s", pid_file)
        return None
    return pid if is_alive(pid) and _start_time(pid) == started else None


def spawn(dirs: StackDirs, component: str, launch: Launch) -> "subprocess.Popen[bytes]":
    """Start a server in its own session, output appended to its log, pid file written.

    Its own session keeps it out of the terminal's process group, so it survives the CLI and
    Ctrl-C, and `stop` can signal the whole group.
    """
    dirs.logs.mkdir(parents=True, exist_ok=True)
    dirs.run.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **launch.env, _MARK_VARIABLE: dirs.mark(component)}
    log_path = dirs.log(component)
    with log_path.open("ab") as log:
        try:
            account = None if launch.user is None else pwd.getpwnam(launch.user)
            process = subprocess.Popen(
                list(launch.argv),
                cwd=launch.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                # The server itself is exec'd with the user's ids, so the pid file names it.
                user=None if account is None else account.pw_uid,
                group=None if account is None else account.pw_gid,
                extra_groups=None if account is None else [],
            )
        except KeyError as exc:
            raise StackError(f"{component}: no system user {launch.user!r}") from exc
        except OSError as exc:
            raise StackError(f"{component}: cannot run {launch.argv[0]}: {exc}") from exc
    dirs.pid_file(component).write_text(f"{process.pid} {_start_time(process.pid)}\n")
    logger.info("spawned %s", component, extra={"pid": process.pid, "argv": " ".join(launch.argv)})
    return process


def stop(
    pids: Sequence[int], timeout_s: float, first: Mapping[int, signal.Signals] | None = None
) -> list[int]:
    """Signal each process group (`first[pid]`, else SIGTERM), SIGKILL what is left after
    `timeout_s`; returns the survivors."""
    for pid in pids:
        _signal_group(pid, (first or {}).get(pid, signal.SIGTERM))
    remaining = wait_gone(pids, timeout_s)
    if remaining:
        logger.warning("SIGKILL after %.0f s", timeout_s, extra={"pids": remaining})
        for pid in remaining:
            _signal_group(pid, signal.SIGKILL)
        remaining = wait_gone(remaining, 10.0)
    return remaining


def _signal_group(pid: int, signum: signal.Signals) -> None:
    # Each server leads its own session, so its pid is its group id; the group also covers
    # any helper it forked.
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def wait_gone(pids: Collection[int], timeout_s: float) -> list[int]:
    """The processes of ``pids`` still alive after waiting up to ``timeout_s`` for them to end."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = [pid for pid in pids if is_alive(pid)]
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(_POLL_INTERVAL_S)


def wait_ready(
    component: str,
    probe: Callable[[], None],
    exited: Callable[[], str | None],
    log_path: Path,
    timeout_s: float,
) -> None:
    """Call `probe` until it passes; fail at once when `exited` says why the process ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            probe()
        except StackError as exc:
            last_error = str(exc)
        else:
            return
        ended = exited()
        if ended is not None:
            raise StackError(
                f"{component} {ended} while starting; log {log_path}:\n{tail_text(log_path, 25)}"
            )
        if time.monotonic() >= deadline:
            raise StackError(
                f"{component} not ready after {timeout_s:.0f} s ({last_error}); "
                f"log {log_path}:\n{tail_text(log_path, 25)}"
            )
        time.sleep(_PROBE_INTERVAL_S)


def tcp_open(host: str, port: int, timeout_s: float) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_is_free(host: str, port: int) -> bool:
    """True when a server could bind host:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers themselves: a closed connection in TIME_WAIT does not hold the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in {errno.EADDRINUSE, errno.EACCES}:
                return False
            raise StackError(f"cannot check port {host}:{port}: {exc}") from exc
    return True


def free_ports(count: int = 1) -> list[int]:
    """``count`` distinct loopback ports free right now (all held at once while choosing)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def port_holder(port: int) -> str:
    """Who listens on `port`: "pid N (command line)", or a hint when /proc does not tell."""
    inodes = _listening_inodes(port)
    if inodes:
        for entry in _PROC.iterdir():
            if entry.name.isdigit() and _has_socket(entry, inodes):
                pid = int(entry.name)
                return f"pid {pid} ({_cmdline(pid)})"
    return "a process this user cannot see (try `ss -ltnp`)"


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == _LISTEN:
                inodes.add(fields[9])
    return inodes


def _has_socket(proc_dir: Path, inodes: set[str]) -> bool:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        for fd in (proc_dir / "fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in wanted:
                    return True
    except (PermissionError, FileNotFoundError, ProcessLookupError):
        return False
    return False


def _cmdline(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return text if len(text) <= 120 else text[:117] + "..."


def tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a log file (empty when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            # Enough bytes for `count` long lines without reading a large log whole.
            handle.seek(max(0, size - 400 * (count + 1)))
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:] if count > 0 else []


def tail_text(path: Path, count: int) -> str:
    """The last `count` lines of a log file, indented for an error message."""
    return "\n".join(f"    {line}" for line in tail_lines(path, count)) or "    (empty)"


def follow(
    paths: Mapping[str, Path], stop_after_s: float | None = None
) -> Iterator[tuple[str, str]]:
    """Yield (name, line) for lines appended to the files from now on, like `tail -f`."""
    offsets = {name: path.stat().st_size if path.exists() else 0 for name, path in paths.items()}
    pending = dict.fromkeys(paths, b"")
    started = time.monotonic()
    while stop_after_s is None or time.monotonic() - started < stop_after_s:
        for name, path in paths.items():
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < offsets[name]:
                offsets[name] = 0  # truncated or recreated
            if size == offsets[name]:
                continue
            with path.open("rb") as handle:
                handle.seek(offsets[name])
                chunk = handle.read(size - offsets[name])
            offsets[name] = size
            *complete, pending[name] = (pending[name] + chunk).split(b"\n")
            for line in complete:
                yield name, line.decode(errors="replace")
        time.sleep(_PROBE_INTERVAL_S)

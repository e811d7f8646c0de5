"""A Ray cluster of several nodes on this machine, started with the `ray` CLI, for the tests and
the sweep benchmark: `local_ray_cluster`.

Each node is one `ray start` (the first the head), its CPUs and object store capped, so that
two nodes on one machine behave like two small machines. This module runs the `ray` command
that sits beside the running Python; it never imports ray (the Ray adapter does,
`backtest/adapters/ray_executor.py`, which connects to the cluster as its driver).

Each `ray start` runs as the leader of a new session: the daemons it leaves behind keep its
process group, so a node (its raylet, object store, and its workers, which run in process
groups of their own under the raylet) is that group plus its descendants, and is SIGKILLed as
one, whether to end the cluster or to lose a node in a test.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from finplat.stack.errors import StackError
from finplat.stack.process import free_ports, proc_stat, wait_gone

_PROC = Path("/proc")
# The `ray` command of the environment finplat runs in, the same Ray version as its workers.
RAY_CLI = Path(sys.executable).parent / "ray"
START_TIMEOUT_S = 180.0
# How long cleanup waits for SIGKILLed processes to be gone before it removes their files.
_GONE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LocalRayCluster:
    """A running local cluster: ``address`` (host:port of its head) for `ray.init` or
    `RayExecutor`, and the process group of each node's `ray start`, the head first."""

    address: str
    groups: tuple[int, ...]

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index`` (1 for the first after the head, which is 0): its raylet and
        every process of it, its workers included, at once, as if its machine were lost."""
        if not 1 <= index < len(self.groups):
            raise ValueError(f"node index must be in 1..{len(self.groups) - 1}, got {index}")
        kill(group_and_descendants(self.groups[index]))


def group_and_descendants(group: int) -> set[int]:
    """The live processes of process group ``group`` and all their descendants, whatever
    their own group (a process that leaves the group stays its parent's descendant)."""
    table: dict[int, tuple[int, int]] = {}  # pid: (parent, group)
    for entry in _PROC.iterdir():
        fields = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None:  # None: not a process, or gone meanwhile
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    found = {pid for pid, (_, pgid) in table.items() if pgid == group}
    while True:
        children = {pid for pid, (parent, _) in table.items() if parent in found} - found
        if not children:
            return found
        found |= children


def kill(pids: set[int]) -> None:
    """SIGKILL each of ``pids``; one that ended meanwhile is skipped."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _ray_start(groups: list[int], cpus: int, object_store_bytes: int, *args: str) -> None:
    """Run `ray start` as the leader of a new session, and add the process group its daemons
    keep to ``groups`` first (so that what a failed start left is killed too)."""
    if not RAY_CLI.is_file():
        raise StackError(f"{RAY_CLI} not found: the ray package is not installed beside Python")
    # No log monitor: it only forwards the workers' output to a driver, and is one process
    # less per node.
    command = [str(RAY_CLI), "start", f"--num-cpus={cpus}",
               f"--object-store-memory={object_store_bytes}", "--include-log-monitor=false",
               "--disable-usage-stats", *args]  # fmt: skip
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    groups.append(process.pid)
    try:
        output, _ = process.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill(group_and_descendants(process.pid))
        output, _ = process.communicate()
        raise StackError(
            f"{' '.join(command)} did not finish in {START_TIMEOUT_S:.0f} s:\n{output}"
        ) from None
    if process.returncode != 0:
        raise StackError(f"{' '.join(command)} failed (exit {process.returncode}):\n{output}")


@contextlib.contextmanager
def local_ray_cluster(
    nodes: int = 2, cpus_per_node: int = 1, object_store_bytes: int = 200_000_000
) -> Iterator[LocalRayCluster]:
    """A head and ``nodes - 1`` more nodes of ``cpus_per_node`` CPUs and an object store of
    ``object_store_bytes`` each, on loopback, no dashboard; for the block.

    Raises StackError with the `ray start` output when a node does not start. Afterwards (or
    after a failed start) every process the nodes started is SIGKILLed and their files removed.
    """
    if nodes < 1 or cpus_per_node < 1:
        raise ValueError(f"need nodes >= 1 and cpus_per_node >= 1, got {nodes}, {cpus_per_node}")
    # Short: Ray's unix sockets live under it, and a socket path has at most 107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port, client_port = free_ports(2)
    groups: list[int] = []
    try:
        _ray_start(groups, cpus_per_node, object_store_bytes, "--head", f"--port={port}",
                   f"--ray-client-server-port={client_port}", "--include-dashboard=false",
                   f"--temp-dir={temp / 'node0'}")  # fmt: skip
        for index in range(1, nodes):
            _ray_start(groups, cpus_per_node, object_store_bytes, f"--address=127.0.0.1:{port}",
                       f"--temp-dir={temp / f'node{index}'}")  # fmt: skip
        yield LocalRayCluster(f"127.0.0.1:{port}", tuple(groups))
    finally:
        killed: set[int] = set()
        for group in groups:
            pids = group_and_descendants(group)
            kill(pids)
            killed |= pids
        wait_gone(killed, _GONE_TIMEOUT_S)
        shutil.rmtree(temp, ignore_errors=True)

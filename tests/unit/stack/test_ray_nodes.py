"""A node of the local Ray cluster is its `ray start`'s process group and every descendant."""

import subprocess
import sys
import time

from finplat.stack.process import is_alive
from finplat.stack.ray_nodes import group_and_descendants, kill

# A session leader with a child in its group and a child of its own session, which has a child
# in turn (as a raylet's workers run in groups of their own); each prints its pid.
_TREE = """
import subprocess, sys, time
sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
in_group = subprocess.Popen(sleeper)
own_group = subprocess.Popen(
    [sys.executable, "-c",
     "import subprocess, sys, time; c = subprocess.Popen(sys.argv[1:]); print(c.pid, flush=True);"
     " time.sleep(60)", *sleeper],
    start_new_session=True, stdout=subprocess.PIPE, text=True,
)
grandchild = own_group.stdout.readline().strip()
print(in_group.pid, own_group.pid, grandchild, flush=True)
time.sleep(60)
"""


def _gone(pids: set[int], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(is_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_group_and_its_descendants_in_other_groups_are_found_and_killed() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    tree = [sys.executable, "-c", _TREE]
    with (
        subprocess.Popen(tree, stdout=subprocess.PIPE, text=True, start_new_session=True) as leader,
        subprocess.Popen(sleeper) as outsider,
    ):
        try:
            assert leader.stdout is not None
            descendants = {int(pid) for pid in leader.stdout.readline().split()}

            found = group_and_descendants(leader.pid)
            kill(found)

            assert len(descendants) == 3
            assert found == {leader.pid, *descendants}
            assert _gone(found)
            assert outsider.poll() is None
        finally:
            kill(group_and_descendants(leader.pid))
            outsider.kill()

"""Process helpers for the supervisor unit tests and the platform CLI integration tests."""

import os
from pathlib import Path

from finplat.stack.process import is_alive


def pids_in_session(leader: int) -> list[int]:
    """Live processes whose session is `leader`'s (each child leads its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == leader and is_alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile
                continue
    return found


def pid_in_file(run_dir: Path, name: str) -> int:
    """The pid a child's pid file names (alive or not)."""
    return int((run_dir / f"{name}.pid").read_text().split()[0])

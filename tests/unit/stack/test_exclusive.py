"""One `up` or `down` at a time on one directory."""

from pathlib import Path

import pytest

from finplat.stack.process import exclusive


class FakeBusyError(Exception):
    """Stands in for the stack's and the platform's own errors."""


def test_a_held_lock_refuses_a_second_holder_at_once(tmp_path: Path) -> None:
    lock = tmp_path / "run" / "test.lock"

    with exclusive(lock, FakeBusyError("first")):
        second = exclusive(lock, FakeBusyError("second"))
        with pytest.raises(FakeBusyError, match="second"):
            second.__enter__()
    with exclusive(lock, FakeBusyError("third")):
        reacquired = True

    assert reacquired

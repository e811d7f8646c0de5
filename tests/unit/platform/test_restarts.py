"""The restart budget of one child, on a clock passed in, and how a child's end is described."""

import signal
import subprocess
import sys

import pytest
from pydantic import ValidationError

from finplat.platform.processes import Handle, Restarts
from finplat.platform.settings import PlatformSettings
from tests.unit.platform.fakes import FixedRandom


def _restarts(restart_max: int = 10, jitter_draw: float = 0.0) -> Restarts:
    settings = PlatformSettings(
        restart_delay_s=1,
        restart_delay_max_s=4,
        restart_reset_after_s=60,
        restart_max=restart_max,
        restart_window_s=100,
    )
    return Restarts(settings, FixedRandom(jitter_draw))


def test_waits_double_up_to_the_cap() -> None:
    restarts = _restarts()

    delays = [restarts.next_delay_s(now=t, uptime_s=0) for t in range(5)]

    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert restarts.count == 5


def test_jitter_shortens_a_wait() -> None:
    # A draw of 0.5 takes off half the largest share (RetryPolicy's jitter of 0.5): a quarter.
    restarts = _restarts(jitter_draw=0.5)

    assert [restarts.next_delay_s(now=t, uptime_s=0) for t in range(2)] == [0.75, 1.5]


def test_a_long_enough_run_starts_the_backoff_over() -> None:
    restarts = _restarts()

    delays = [
        restarts.next_delay_s(now=0, uptime_s=0),
        restarts.next_delay_s(now=10, uptime_s=0),
        restarts.next_delay_s(now=80, uptime_s=59.9),
        restarts.next_delay_s(now=150, uptime_s=60),
    ]

    assert delays == [1.0, 2.0, 4.0, 1.0]


def test_one_exit_more_than_the_limit_within_the_window_gives_up() -> None:
    restarts = _restarts(restart_max=2)

    delays = [restarts.next_delay_s(now=t, uptime_s=0) for t in (0, 10, 20)]

    assert delays == [1.0, 2.0, None]
    assert restarts.count == 2


def test_exits_older_than_the_window_no_longer_count() -> None:
    restarts = _restarts(restart_max=2)

    delays = [restarts.next_delay_s(now=t, uptime_s=0) for t in (0, 10, 100, 101)]

    # At 100 the exit at 0 has left the window (100 s); at 101 those at 10, 100, 101 are 3.
    assert delays == [1.0, 2.0, 4.0, None]


def test_a_first_wait_above_the_cap_is_refused_when_settings_are_read() -> None:
    with pytest.raises(ValidationError, match=r"initial_s \(5.0\) exceeds max_s \(1.0\)"):
        PlatformSettings(restart_delay_s=5, restart_delay_max_s=1)


@pytest.mark.parametrize(
    ("script", "signum", "expected"),
    [
        ("import sys; sys.exit(4)", None, "exited with code 4"),
        ("import time; time.sleep(60)", signal.SIGKILL, "killed by SIGKILL"),
        # Real-time signals above SIGRTMIN have no name in the signal module.
        ("import time; time.sleep(60)", 35, "killed by signal 35"),
    ],
)
def test_exit_reason_names_the_code_or_the_signal(
    script: str, signum: int | None, expected: str
) -> None:
    process = subprocess.Popen([sys.executable, "-c", script])
    if signum is not None:
        process.send_signal(signum)
    process.wait()

    assert Handle(process.pid, 0.0, process).exit_reason() == expected

"""Retry timing: exponential, capped, jittered, resettable."""

import random

import pytest

from finplat.core.retry import Backoff, RetryPolicy


def test_delays_grow_exponentially_without_jitter() -> None:
    policy = RetryPolicy(initial_s=1, max_s=100, multiplier=2, jitter=0)

    delays = [policy.delay_s(n, random.Random(0)) for n in range(5)]

    assert delays == [1, 2, 4, 8, 16]


def test_delays_never_exceed_the_cap_even_after_a_long_outage() -> None:
    policy = RetryPolicy(initial_s=1, max_s=30, multiplier=3, jitter=0.5)
    rng = random.Random(42)

    delays = [policy.delay_s(n, rng) for n in range(2000)]

    assert max(delays) <= 30
    assert min(delays[10:]) >= 15  # capped base 30, shrunk by at most half


def test_jitter_spreads_delays_within_its_bounds() -> None:
    policy = RetryPolicy(initial_s=10, max_s=10, jitter=0.4)
    rng = random.Random(7)

    delays = [policy.delay_s(0, rng) for _ in range(1000)]

    assert all(6 <= d <= 10 for d in delays)
    assert len({round(d, 6) for d in delays}) > 900  # clients do not come back in lock step


def test_backoff_counts_attempts_and_resets() -> None:
    backoff = Backoff(RetryPolicy(initial_s=1, multiplier=2, jitter=0), random.Random(0))

    first = [backoff.next_delay_s() for _ in range(3)]
    backoff.reset()

    assert first == [1, 2, 4]
    assert backoff.next_delay_s() == 1


@pytest.mark.parametrize("field", ["initial_s", "max_s"])
def test_policy_refuses_non_positive_times(field: str) -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        RetryPolicy(**{field: 0})


def test_policy_refuses_a_cap_below_the_first_wait() -> None:
    with pytest.raises(ValueError, match=r"initial_s \(10.0\) exceeds max_s \(1.0\)"):
        RetryPolicy(initial_s=10, max_s=1)

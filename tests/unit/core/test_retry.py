"""Backoff grows, is capped, is jittered downwards only, and resets."""

import random

import pytest

from finplat.core.retry import Backoff, RetryPolicy


class FakeRandom(random.Random):
    """Returns a fixed fraction, so the jittered waits are known in advance."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def test_waits_double_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(RetryPolicy(initial_s=1, max_s=5, multiplier=2, jitter=0.5), FakeRandom(0))

    waits = [backoff.next_delay() for _ in range(5)]

    assert waits == [1, 2, 4, 5, 5]


def test_jitter_shortens_by_at_most_its_fraction() -> None:
    backoff = Backoff(RetryPolicy(initial_s=1, max_s=8, jitter=0.5), FakeRandom(1.0))

    waits = [backoff.next_delay() for _ in range(4)]

    assert waits == [0.5, 1, 2, 4]


def test_reset_starts_over() -> None:
    backoff = Backoff(RetryPolicy(initial_s=1, max_s=8, jitter=0), FakeRandom(0))
    backoff.next_delay()
    backoff.next_delay()

    backoff.reset()

    assert (backoff.failures, backoff.next_delay()) == (0, 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"initial_s": 0}, {"initial_s": 10, "max_s": 1}, {"multiplier": 0.5}, {"jitter": 1.0}],
)
def test_inconsistent_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="inconsistent retry policy"):
        RetryPolicy(**kwargs)

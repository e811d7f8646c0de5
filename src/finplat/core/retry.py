"""Retry timing as an explicit object: capped exponential backoff with jitter."""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between attempts; the wait never exceeds `max_s`."""

    initial_s: float = 0.5
    """First wait."""
    max_s: float = 30.0
    """Cap of every wait."""
    multiplier: float = 2.0
    """Growth of the wait after each failure."""
    jitter: float = 0.2
    """Each wait is shortened by up to this fraction at random, so clients don't retry in step."""

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.max_s and self.multiplier >= 1 and 0 <= self.jitter < 1):
            raise ValueError(f"inconsistent retry policy: {self}")


class Backoff:
    """The successive waits of one retry loop; `reset` after a success."""

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self._policy = policy
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Failures since the last reset."""
        return self._failures

    def next_delay(self) -> float:
        """The wait before the next attempt, counting one more failure."""
        policy = self._policy
        base = min(policy.max_s, policy.initial_s * policy.multiplier**self._failures)
        self._failures += 1
        return base * (1 - policy.jitter * self._rng.random())

    def reset(self) -> None:
        """Start again from the initial wait."""
        self._failures = 0

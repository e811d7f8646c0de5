"""Retry timing as an explicit object: capped exponential backoff with jitter."""

import random
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RetryPolicy(BaseModel):
    """Capped exponential backoff with jitter.

    The n-th retry (n from 0) waits `min(max_s, initial_s * multiplier**n)` shrunk by a random
    fraction of up to `jitter`, so clients that lost the same server do not come back in lock
    step, and the wait never exceeds the cap.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_s: float = Field(default=1.0, gt=0)
    """First wait."""
    max_s: float = Field(default=60.0, gt=0)
    """Cap of every wait."""
    multiplier: float = Field(default=2.0, ge=1)
    """Growth of the wait after each failure."""
    jitter: float = Field(default=0.5, ge=0, le=1)
    """Largest fraction by which a wait is shortened at random."""
    reset_after_s: float = Field(default=60.0, ge=0)
    """A connection that stayed up this long counts as healthy: the next failure starts over."""
    max_attempts: int = Field(default=5, ge=1)
    """Attempts of a request before it gives up (long-lived loops never give up)."""

    @model_validator(mode="after")
    def _cap_above_start(self) -> Self:
        if self.initial_s > self.max_s:
            raise ValueError(f"initial_s ({self.initial_s}) exceeds max_s ({self.max_s})")
        return self

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        # The exponent is capped too so a long outage cannot overflow the float.
        base = min(self.max_s, self.initial_s * self.multiplier ** min(attempt, 64))
        return base * (1.0 - self.jitter * rng.random())


class Backoff:
    """The successive waits of one retry loop; `reset` after a success."""

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self._policy = policy
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay_s(self) -> float:
        """The wait before the next attempt, counting one more failure."""
        delay = self._policy.delay_s(self.attempt, self._rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from the initial wait."""
        self.attempt = 0

"""The sliding-window limiter behind Binance's message and connection limits."""

import pytest

from finplat.price.adapters.binance.limits import SlidingWindowLimiter
from tests.unit.price.conftest import FakeClock


@pytest.mark.asyncio
async def test_limiter_waits_once_the_window_is_full(fake_clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(max_events=5, window_s=1.0, clock=fake_clock)

    for _ in range(12):
        await limiter.acquire()

    # 5 at t=0, 5 at t=1, 2 at t=2: it waited for the window twice.
    assert fake_clock.sleeps == [1.0, 1.0]
    assert limiter.waits == 2

"""Small helpers shared by tests: readiness waits instead of sleeps."""

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.05) -> T:
    """Call `probe` until it returns something other than None, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


async def eventually_async(condition: Callable[[], bool], timeout_s: float) -> None:
    """Wait until `condition()` holds, checking between event-loop turns."""
    async with asyncio.timeout(timeout_s):
        # Polling is the point: the condition is state of the code under test, not an awaitable.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.001)

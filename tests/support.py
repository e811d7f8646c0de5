"""Small helpers shared by tests: readiness waits instead of sleeps."""

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import Awaitable, Callable
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


async def eventually_async(
    condition: Callable[[], bool | Awaitable[bool]], timeout_s: float, interval_s: float = 0.001
) -> None:
    """Wait until `condition()` holds (it may be a coroutine function), checking between turns."""
    async with asyncio.timeout(timeout_s):
        while True:
            outcome = condition()
            if await outcome if inspect.isawaitable(outcome) else outcome:
                return
            # Polling is the point: the condition is state of the code under test.
            await asyncio.sleep(interval_s)


def free_ports(count: int = 1) -> list[int]:
    """`count` distinct loopback ports free right now (all held at once while choosing)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]

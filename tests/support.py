"""Small helpers shared by tests: readiness waits instead of sleeps, free ports, certificates."""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import trustme

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


def write_certificates(folder: Path, *names: str) -> tuple[Path, Path, Path]:
    """A new CA (trustme) and a server certificate for `names` signed by it, as PEM files:
    (CA file, certificate chain, private key)."""
    authority = trustme.CA()
    issued = authority.issue_cert(*names)
    ca, chain, key = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    authority.cert_pem.write_to_path(str(ca))
    issued.private_key_pem.write_to_path(str(key))
    chain.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    return ca, chain, key

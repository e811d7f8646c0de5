"""The event loop the price service runs on: uvloop where it is installed, else asyncio's.

uvloop roughly halves the loop's own cost per gRPC message (the StreamPrices fan-out writes
one message per subscriber per batch), and the feed's and sinks' sockets are cheaper too.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard] on Linux and macOS
    uvloop = None  # type: ignore[assignment]


def run(main: Coroutine[Any, Any, T], use_uvloop: bool = True) -> T:
    """`asyncio.run(main)`, on uvloop when it is installed and `use_uvloop`."""
    if use_uvloop and uvloop is not None:
        return uvloop.run(main)
    return asyncio.run(main)

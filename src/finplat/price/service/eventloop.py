"""The event loop the price service runs on: uvloop where it is installed, else asyncio's.

uvloop roughly halves the loop's own cost per gRPC message (the StreamPrices fan-out writes
one message per subscriber per batch), and the feed's and sinks' sockets are cheaper too.
"""

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard] on Linux and macOS
    uvloop = None  # type: ignore[assignment]


# Python's defaults are (700, 10, 10): a young collection every 700 allocations.
GC_THRESHOLDS = (50_000, 50, 100)


def quiet_gc() -> None:
    """Freeze what is alive now out of the collector's scans and make collections rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(main: Coroutine[Any, Any, T], use_uvloop: bool = True) -> T:
    """`asyncio.run(main)` after `quiet_gc`, on uvloop when it is installed and `use_uvloop`."""
    quiet_gc()
    if use_uvloop and uvloop is not None:
        return uvloop.run(main)
    return asyncio.run(main)

"""A sink's bounded buffer and batch writer: one slow or absent store never stalls the others.

`offer` never blocks the feed. The writer task takes batches off the buffer and writes them,
letting a partial batch gather for `linger_s` first (one write per linger rather than one per
update at moderate rates); when the store fails, the batch goes back to the front and the
writer retries with capped, jittered backoff. While the store is away the buffer fills up to
its bound, and then the oldest items are dropped and counted: the freshest data is what a price
store needs first.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from finplat.core.retry import Backoff, RetryPolicy
from finplat.price.adapters.errors import StoreRejectedError, StoreUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")
WriteBatch = Callable[[Sequence[T]], Awaitable[None]]


@dataclass
class SinkStats:
    """Counters of one sink, read by health and metrics."""

    accepted: int = 0
    written: int = 0
    dropped: int = 0
    rejected: int = 0
    failures: int = 0
    batches: int = 0
    healthy: bool = True
    last_error: str = ""
    last_batch_s: float = 0.0


class BufferedSink(Generic[T]):
    """Bounded buffer in front of one store's batch write."""

    def __init__(
        self,
        name: str,
        write: WriteBatch[T],
        *,
        capacity: int,
        batch_size: int,
        retry: RetryPolicy,
        backoff: Backoff | None = None,
        linger_s: float = 0.0,
    ) -> None:
        if capacity < 1 or batch_size < 1:
            raise ValueError(f"{name}: capacity and batch size must be positive")
        self.name = name
        self._write = write
        self._capacity = capacity
        self._batch_size = batch_size
        self._backoff = backoff or Backoff(retry)
        self._linger_s = linger_s
        self._buffer: deque[T] = deque()
        self._ready = asyncio.Event()
        self.stats = SinkStats()

    def __len__(self) -> int:
        return len(self._buffer)

    def offer(self, item: T) -> None:
        """Accept one item without waiting; the oldest is dropped when the buffer is full."""
        self.stats.accepted += 1
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()
            self.stats.dropped += 1
        self._buffer.append(item)
        self._ready.set()

    def _take_batch(self) -> list[T]:
        count = min(self._batch_size, len(self._buffer))
        return [self._buffer.popleft() for _ in range(count)]

    def _give_back(self, batch: list[T]) -> None:
        # Items offered while the batch was out went behind it; order is kept and the bound too.
        self._buffer.extendleft(reversed(batch))
        while len(self._buffer) > self._capacity:
            self._buffer.popleft()
            self.stats.dropped += 1

    async def _write_once(self) -> bool:
        batch = self._take_batch()
        started = time.perf_counter()
        try:
            await self._write(batch)
        except StoreRejectedError as exc:
            # Retrying the same data would fail the same way: count it and move on.
            self.stats.rejected += len(batch)
            logger.error("%s refused a batch of %d: %s", self.name, len(batch), exc)
            return True
        except StoreUnavailableError as exc:
            self.stats.written += exc.written
            self._give_back(batch[exc.written :])
            self.stats.failures += 1
            if self.stats.healthy:
                logger.warning("%s unavailable, buffering: %s", self.name, exc)
            self.stats.healthy = False
            self.stats.last_error = str(exc)
            return False
        self.stats.last_batch_s = time.perf_counter() - started
        self.stats.written += len(batch)
        self.stats.batches += 1
        if not self.stats.healthy:
            logger.info("%s back, catching up", self.name, extra={"buffered": len(self._buffer)})
        self.stats.healthy = True
        self._backoff.reset()
        return True

    async def run(self) -> None:
        """Write until cancelled; the owner cancels it and then calls `drain`."""
        while True:
            if not self._buffer:
                self._ready.clear()
                await self._ready.wait()
            if self._linger_s and len(self._buffer) < self._batch_size:
                await asyncio.sleep(self._linger_s)
            if not await self._write_once():
                await asyncio.sleep(self._backoff.next_delay_s())

    async def drain(self, timeout_s: float) -> int:
        """Write what is left, for at most `timeout_s`; returns how many items are left."""
        deadline = time.monotonic() + timeout_s
        while self._buffer and time.monotonic() < deadline:
            if not await self._write_once():
                await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        if self._buffer:
            logger.error("%s: %d items not written at shutdown", self.name, len(self._buffer))
        return len(self._buffer)


async def drain_all(sinks: Iterable[BufferedSink[Any]], timeout_s: float) -> list[int]:
    """Drain the sinks side by side for at most `timeout_s` in all; what each has left.

    One after the other, a store that is away would hold every sink behind it for its whole
    timeout, and shutdown would take one timeout per sink: longer than a supervisor waits
    before it kills the process, and everything still buffered is lost."""
    return await asyncio.gather(*(sink.drain(timeout_s) for sink in sinks))

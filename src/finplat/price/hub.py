"""In-process fan-out of published updates to StreamPrices subscribers.

`publish` never waits: each subscriber has its own bounded queue, and one that lets it overflow
is cut off (its stream ends with RESOURCE_EXHAUSTED and the client reconnects) so it can slow
neither the feed nor the other subscribers. A subscriber takes everything queued at once, which
turns a burst into one message instead of many.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager

from finance.market.v1 import market_pb2
from finplat.price.errors import PriceError


class SlowSubscriberError(PriceError):
    """The subscriber fell more than its queue bound behind and was cut off."""


class Subscription:
    """One subscriber's queue; iterate it for batches of updates."""

    def __init__(self, symbols: frozenset[str], capacity: int, max_batch: int) -> None:
        self.symbols = symbols
        self._capacity = capacity
        self._max_batch = max_batch
        self._queue: deque[market_pb2.PriceUpdate] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False

    def push(self, update: market_pb2.PriceUpdate) -> bool:
        """Queue one update; True when this update overflowed the queue and cut it off."""
        if self.overflowed:
            return False
        if len(self._queue) >= self._capacity:
            self.overflowed = True
            self._queue.clear()
            self._ready.set()
            return True
        self._queue.append(update)
        self._ready.set()
        return False

    async def next_batch(self) -> list[market_pb2.PriceUpdate]:
        """Wait for updates and take up to `max_batch` of them, oldest first."""
        while not self._queue and not self.overflowed:
            self._ready.clear()
            await self._ready.wait()
        if self.overflowed:
            raise SlowSubscriberError(f"subscriber fell more than {self._capacity} updates behind")
        count = min(self._max_batch, len(self._queue))
        return [self._queue.popleft() for _ in range(count)]

    async def batches(self) -> AsyncIterator[list[market_pb2.PriceUpdate]]:
        """Batches until the subscriber is cut off (SlowSubscriberError) or cancelled."""
        while True:
            yield await self.next_batch()


class PriceHub:
    """Subscribers indexed by symbol, so a publish touches only those who asked for it."""

    def __init__(self, queue_capacity: int = 10_000, max_batch: int = 500) -> None:
        self._capacity = queue_capacity
        self._max_batch = max_batch
        self._by_symbol: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self.published = 0
        self.cut_off = 0

    @property
    def subscribers(self) -> int:
        """Subscribers currently attached."""
        return len(self._all) + len({s for subs in self._by_symbol.values() for s in subs})

    @contextmanager
    def subscribe(self, symbols: Iterable[str] = ()) -> Iterator[Subscription]:
        """Attach a subscriber for `symbols` (every symbol when empty) for the `with` block."""
        wanted = frozenset(symbol.upper() for symbol in symbols)
        subscription = Subscription(wanted, self._capacity, self._max_batch)
        targets = (
            [self._all] if not wanted else [self._by_symbol.setdefault(s, set()) for s in wanted]
        )
        for target in targets:
            target.add(subscription)
        try:
            yield subscription
        finally:
            for target in targets:
                target.discard(subscription)
            for symbol in wanted:
                if not self._by_symbol.get(symbol, True):
                    del self._by_symbol[symbol]

    def publish(self, update: market_pb2.PriceUpdate) -> None:
        """Hand one update to every interested subscriber, without waiting for any."""
        self.published += 1
        for subscription in (*self._all, *self._by_symbol.get(update.symbol, ())):
            if subscription.push(update):
                self.cut_off += 1

"""In-process fan-out of published updates to StreamPrices subscribers.

Subscribers asking for the same symbols share one log: `publish` encodes an update once and
appends it to the log of each filter that wants it (usually one or two), whatever the number of
subscribers, and wakes only those waiting. Each subscriber reads the log from its own cursor and
takes everything published since its last message, so a burst becomes one message, and one
subscriber's pace never touches the others'. The log keeps the last `capacity` updates; a
subscriber that falls further behind is cut off (its stream ends with RESOURCE_EXHAUSTED and the
client reconnects), or with `skip_ahead` jumps to the newest update, and never slows the feed.

Every update is kept protobuf-encoded as one element of `StreamPricesResponse.prices`
(field 1: tag, length, bytes). Concatenated, such elements are the encoding of a response
carrying them all, so a subscriber's message is a join of bytes, never a per-subscriber encoding.
"""

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager

from finance.market.v1 import market_pb2, price_service_pb2
from finplat.price.errors import PriceError

# Field 1 (`prices`), wire type 2 (length-delimited).
_PRICES_TAG = bytes([(price_service_pb2.StreamPricesResponse.PRICES_FIELD_NUMBER << 3) | 2])


def encode_element(update: market_pb2.PriceUpdate) -> bytes:
    """`update` as one encoded element of `StreamPricesResponse.prices`."""
    body = update.SerializeToString()
    size = len(body)
    if size < 0x80:
        return _PRICES_TAG + bytes((size,)) + body
    varint = bytearray()
    while size >= 0x80:
        varint.append((size & 0x7F) | 0x80)
        size >>= 7
    varint.append(size)
    return _PRICES_TAG + varint + body


class SlowSubscriberError(PriceError):
    """The subscriber fell more than the log's capacity behind and was cut off."""


class _Log:
    """The updates of one symbol filter, numbered from 0, the last `capacity` of them kept."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.updates: list[market_pb2.PriceUpdate] = []
        self.encoded: list[bytes] = []
        self.first = 0
        """Sequence number of `updates[0]`."""
        self.end = 0
        """Sequence number the next update will get."""
        self.waiting: list[asyncio.Future[None]] = []
        self.subscribers = 0

    def append(self, update: market_pb2.PriceUpdate, encoded: bytes) -> None:
        self.updates.append(update)
        self.encoded.append(encoded)
        self.end += 1
        if len(self.updates) >= 2 * self.capacity:
            # Trimmed in halves, so each update is moved O(1) times.
            excess = len(self.updates) - self.capacity
            del self.updates[:excess]
            del self.encoded[:excess]
            self.first += excess
        if self.waiting:
            waiting, self.waiting = self.waiting, []
            for future in waiting:
                if not future.done():
                    future.set_result(None)

    async def wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            self.waiting.remove(future)
            raise


class Subscription:
    """One subscriber's cursor in a shared log; iterate it for messages of updates."""

    def __init__(
        self, symbols: frozenset[str], log: _Log, max_batch: int, skip_ahead: bool
    ) -> None:
        self.symbols = symbols
        self._log = log
        self._max_batch = max_batch
        self._skip_ahead = skip_ahead
        self._cursor = log.end
        self.overflowed = False
        self.skipped = 0
        """Updates jumped over (with `skip_ahead`)."""

    @property
    def behind(self) -> int:
        """Updates published for this subscriber and not yet taken."""
        return self._log.end - self._cursor

    async def _take(self) -> tuple[int, int]:
        """Wait for updates; the log indexes of the next batch, which the cursor moves past."""
        log = self._log
        while self._cursor == log.end:
            await log.wait()
        if self._cursor < log.end - log.capacity:
            if not self._skip_ahead:
                self.overflowed = True
                raise SlowSubscriberError(
                    f"subscriber fell more than {log.capacity} updates behind"
                )
            # On to the newest updates, one message's worth.
            resume = log.end - min(self._max_batch, log.capacity)
            self.skipped += resume - self._cursor
            self._cursor = resume
        start = self._cursor - log.first
        stop = min(log.end, self._cursor + self._max_batch) - log.first
        self._cursor = log.first + stop
        return start, stop

    async def next_batch(self) -> list[market_pb2.PriceUpdate]:
        """Wait for updates and take up to `max_batch` of them, oldest first."""
        start, stop = await self._take()
        return self._log.updates[start:stop]

    async def next_entries(self) -> tuple[list[market_pb2.PriceUpdate], list[bytes]]:
        """Like `next_batch`, each update with its encoded element (for a filter to pick from)."""
        start, stop = await self._take()
        return self._log.updates[start:stop], self._log.encoded[start:stop]

    async def next_message(self) -> bytes:
        """Like `next_batch`, as an encoded `StreamPricesResponse`."""
        start, stop = await self._take()
        encoded = self._log.encoded
        return encoded[start] if stop - start == 1 else b"".join(encoded[start:stop])

    async def messages(self) -> AsyncIterator[bytes]:
        """Encoded messages until the subscriber is cut off (SlowSubscriberError) or cancelled."""
        while True:
            yield await self.next_message()

    async def batches(self) -> AsyncIterator[list[market_pb2.PriceUpdate]]:
        """Batches until the subscriber is cut off (SlowSubscriberError) or cancelled."""
        while True:
            yield await self.next_batch()


class StreamHub:
    """One log per distinct symbol filter, so a publish costs per filter, not per subscriber."""

    def __init__(
        self, queue_capacity: int = 10_000, max_batch: int = 500, skip_ahead: bool = False
    ) -> None:
        self._capacity = queue_capacity
        self.max_batch = max_batch
        """Most updates in one message."""
        self._skip_ahead = skip_ahead
        self._logs: dict[frozenset[str], _Log] = {}
        # symbol -> the logs that want it; "" -> the logs of every symbol. Rebuilt on change.
        self._routes: dict[str, tuple[_Log, ...]] = {}
        self._subscriptions: set[Subscription] = set()
        self._gone_cut_off = 0
        # symbol -> the last update published: where a resumed stream's Kafka read must reach.
        self._last: dict[str, market_pb2.PriceUpdate] = {}
        self.published = 0

    @property
    def subscribers(self) -> int:
        """Subscribers currently attached."""
        return len(self._subscriptions)

    @property
    def cut_off(self) -> int:
        """Subscribers cut off as too slow since the start (attached or gone)."""
        return self._gone_cut_off + sum(s.overflowed for s in self._subscriptions)

    @contextmanager
    def subscribe(self, symbols: Iterable[str] = ()) -> Iterator[Subscription]:
        """Attach a subscriber for `symbols` (every symbol when empty) for the `with` block."""
        wanted = frozenset(symbol.upper() for symbol in symbols)
        log = self._logs.get(wanted)
        if log is None:
            log = self._logs[wanted] = _Log(self._capacity)
            self._route()
        log.subscribers += 1
        subscription = Subscription(wanted, log, self.max_batch, self._skip_ahead)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            self._gone_cut_off += subscription.overflowed
            log.subscribers -= 1
            if not log.subscribers:
                del self._logs[wanted]
                self._route()

    def last(self, symbol: str) -> market_pb2.PriceUpdate | None:
        """The last update of `symbol` published, subscribed to or not."""
        return self._last.get(symbol)

    def _route(self) -> None:
        every = tuple(log for symbols, log in self._logs.items() if not symbols)
        routes: dict[str, list[_Log]] = {}
        for symbols, log in self._logs.items():
            for symbol in symbols:
                routes.setdefault(symbol, [*every]).append(log)
        self._routes = {"": every, **{symbol: tuple(logs) for symbol, logs in routes.items()}}

    def publish(self, update: market_pb2.PriceUpdate) -> None:
        """Append one update to every log that wants it, waking their waiting subscribers."""
        self.published += 1
        self._last[update.symbol] = update
        logs = self._routes.get(update.symbol) or self._routes.get("")
        if logs:
            encoded = encode_element(update)
            for log in logs:
                log.append(update, encoded)

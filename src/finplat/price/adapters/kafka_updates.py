"""The `price-updates` topic read back, for StreamPrices: live, and from a resume position.

`KafkaPriceReader` feeds the hub of a sharded instance with the updates of the symbols other
shards ingest, so that any instance streams every symbol. `KafkaReplay` reads a resumed
stream's missed updates from a time on. Both read every partition outside any consumer group
(`TopicReader`) and commit nothing: each instance, and each resumed stream, reads on its own.

librdkafka's calls block, so each reader runs on a thread of its own and hands its updates to
the event loop; the loop never waits on Kafka. Values are decoded on those threads too, and
only those of the wanted symbols: the key is the symbol, so the rest are skipped undecoded.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from finance.market.v1 import market_pb2
from finplat.core.connections import KafkaSettings
from finplat.core.retry import Backoff, RetryPolicy
from finplat.kafka.consumer import Record
from finplat.kafka.errors import DecodeError, KafkaAdapterError, RegistryUnavailableError
from finplat.kafka.serde import PriceUpdateDeserializer
from finplat.kafka.topic_reader import TopicReader
from finplat.price.adapters.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

Deliver = Callable[[list[market_pb2.PriceUpdate]], None]
# Records per poll; waiting for the first one is bounded by the poll timeout, which is also how
# soon a reader notices it should stop.
_BATCH = 500
_POLL_S = 0.1
# Offsets and metadata calls (a broker away answers nothing, librdkafka would wait for ever).
_REQUEST_TIMEOUT_S = 5.0


class KafkaPriceReader:
    """Publishes the topic's updates of `symbols` (the other shards') as they arrive.

    Reads from the end of every partition as it was at start-up: the hub serves what happens
    while a client is subscribed, and a resumed stream reads its past with `KafkaReplay`.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        decode: PriceUpdateDeserializer,
        symbols: Collection[str],
        retry: RetryPolicy,
    ) -> None:
        self._settings = settings
        self._decode = decode
        self._keys = frozenset(symbol.encode() for symbol in symbols)
        self._retry = retry
        self._reader: TopicReader | None = None
        self.delivered = 0
        """Updates handed to the event loop."""
        self.undecodable = 0
        """Messages of a wanted symbol that are no PriceUpdate, skipped."""
        self.error: str | None = "not reading the topic yet"
        """Why the reader cannot read now; None while it can."""

    @property
    def reason(self) -> str | None:
        """Why the reader is not serving, or None when it is (for the health report)."""
        reader = self._reader
        if reader is not None and reader.brokers_down:
            return "no Kafka broker reachable"
        return self.error

    async def run(self, deliver: Deliver) -> None:
        """Read until cancelled, `deliver`ing each batch on the event loop."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        stop = threading.Event()

        def hand_over(batch: list[market_pb2.PriceUpdate]) -> None:
            loop.call_soon_threadsafe(deliver, batch)

        def body() -> None:
            error: BaseException | None = None
            try:
                self._read(stop, hand_over)
            except BaseException as exc:  # re-raised on the loop, by the task awaiting it
                error = exc
            # RuntimeError: the loop is closed, nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, finished, error)

        thread = threading.Thread(target=body, name="kafka-price-reader", daemon=True)
        thread.start()
        try:
            await finished
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)

    def _read(self, stop: threading.Event, hand_over: Deliver) -> None:
        reader = self._reader = TopicReader(self._settings, "finplat-price-stream")
        backoff = Backoff(self._retry)
        try:
            while not stop.is_set():
                try:
                    reader.assign(reader.topic_end_offsets(_REQUEST_TIMEOUT_S))
                    self.error = None
                    break
                except KafkaAdapterError as exc:
                    self.error = f"cannot find the end of the topic: {exc}"
                    stop.wait(backoff.next_delay_s())
            while not stop.is_set():
                try:
                    records = reader.poll_ready(_BATCH, _POLL_S)
                except KafkaAdapterError as exc:
                    self.error = str(exc)
                    logger.warning("kafka reader: %s", exc)
                    stop.wait(backoff.next_delay_s())
                    continue
                batch = self._decoded(records, stop, backoff)
                if batch:
                    self.delivered += len(batch)
                    hand_over(batch)
                self.error = None
                backoff.reset()
        finally:
            reader.close()

    def _decoded(
        self, records: Iterable[Record], stop: threading.Event, backoff: Backoff
    ) -> list[market_pb2.PriceUpdate]:
        batch = []
        for record in records:
            if record.key not in self._keys:
                continue
            while not stop.is_set():
                try:
                    batch.append(self._decode(record.value))
                except DecodeError as exc:
                    self.undecodable += 1
                    logger.warning(
                        "kafka reader: skipped a message: %s",
                        exc,
                        extra={"partition": record.partition, "offset": record.offset},
                    )
                except RegistryUnavailableError as exc:
                    # A new writer schema: the same message again once the registry answers.
                    self.error = str(exc)
                    stop.wait(backoff.next_delay_s())
                    continue
                break
        return batch


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return  # cancelled while the thread stopped
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class ReplayCollector(Protocol):
    """What `KafkaReplay.read` feeds: a resumed stream's view of the read
    (`finplat.price.service.resume.Resume`)."""

    @property
    def symbols(self) -> frozenset[str]:
        """The symbols whose updates it wants."""
        ...

    @property
    def since_ms(self) -> int:
        """Kafka time the read starts at."""
        ...

    def add(self, update: market_pb2.PriceUpdate, partition: int) -> None:
        """One update of a wanted symbol, in partition order."""
        ...

    def settled(self) -> bool:
        """Whether the read, once at the end offsets it started with, may stop."""
        ...


class KafkaReplay:
    """Reads a resumed stream's updates from a time on, with a Kafka consumer of its own.

    At most `concurrency` reads at a time, on threads of their own: after an instance dies its
    clients resume together, and each read holds a thread and a broker connection.
    """

    def __init__(
        self, settings: KafkaSettings, decode: PriceUpdateDeserializer, concurrency: int = 4
    ) -> None:
        self._settings = settings
        self._decode = decode
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="kafka-replay")

    async def read(self, collector: ReplayCollector, timeout_s: float) -> frozenset[int]:
        """Feed `collector` every update of its symbols from `since_ms` to the topic's end as
        at the call, and on until it is `settled`. Returns the partitions where the read
        wanted updates Kafka had already deleted (retention). StoreUnavailableError when Kafka
        or the registry does not answer, or the read takes over `timeout_s`."""
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout_s
        try:
            return await loop.run_in_executor(
                self._threads, self._read, collector, deadline, cancel
            )
        except asyncio.CancelledError:
            cancel.set()  # the client left: its read stops at the next poll
            raise
        except KafkaAdapterError as exc:
            raise StoreUnavailableError(f"kafka: {exc}") from exc

    def _read(
        self, collector: ReplayCollector, deadline: float, cancel: threading.Event
    ) -> frozenset[int]:
        keys = frozenset(symbol.encode() for symbol in collector.symbols)
        reader = TopicReader(self._settings, "finplat-price-resume")
        try:
            marks = reader.watermarks(_REQUEST_TIMEOUT_S)
            found = reader.offsets_for_time(collector.since_ms, list(marks), _REQUEST_TIMEOUT_S)
            starts = {p: high if (at := found[p]) is None else at for p, (_, high) in marks.items()}
            # The first message still held is at or after the time: those deleted before it
            # may have been too.
            truncated = frozenset(p for p, (low, _) in marks.items() if low > 0 and found[p] == low)
            reader.assign(starts)
            ends = {p: high for p, (_, high) in marks.items()}
            while not cancel.is_set():
                positions = reader.positions(starts)
                if all(positions[p] >= ends[p] for p in ends) and collector.settled():
                    return truncated
                if time.monotonic() > deadline:
                    raise KafkaAdapterError("the topic did not catch up in time to resume")
                for record in reader.poll_ready(_BATCH, _POLL_S):
                    if record.key in keys:
                        self._add(collector, record)
            return truncated
        finally:
            reader.close()

    def _add(self, collector: ReplayCollector, record: Record) -> None:
        try:
            update = self._decode(record.value)
        except DecodeError as exc:
            logger.warning(
                "resume: skipped a message: %s",
                exc,
                extra={"partition": record.partition, "offset": record.offset},
            )
            return
        collector.add(update, record.partition)

    def close(self) -> None:
        """Stop taking reads; those running end at their deadline or cancellation."""
        self._threads.shutdown(wait=False, cancel_futures=True)

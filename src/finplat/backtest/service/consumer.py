"""The statistics consumer: a poll loop on its own thread, owned by an asyncio task.

Threading model: librdkafka's consume() blocks, and its rebalance and error callbacks run
inside it. One dedicated thread owns the client, the SQLite state and the dead-letter producer
and makes every call to them, so no librdkafka object is shared between threads and the event
loop (the gRPC server) never waits on Kafka. Polling from asyncio with `to_thread` per batch
would hop between pool threads and queue behind backtests in the default executor. Readers
(GetStats, the periodic log) take a snapshot under a lock held for a batch at most.
"""

import asyncio
import logging
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from finplat.backtest.domain.stats import StatsSnapshot
from finplat.backtest.errors import StoreError
from finplat.backtest.service.processor import BatchProcessor
from finplat.core.retry import Backoff, RetryPolicy
from finplat.kafka.consumer import OnAssign, OnRevoke, Record
from finplat.kafka.errors import KafkaAdapterError

logger = logging.getLogger(__name__)

# Failures a batch recovers from by restoring the saved state and reading again; the
# Kafka adapter's include a Schema Registry outage (`RegistryUnavailableError`).
RECOVERABLE = (KafkaAdapterError, StoreError)


class Source(Protocol):
    """What the loop needs of Kafka (`finplat.kafka.consumer.PriceUpdateConsumer`)."""

    topic: str
    brokers_down: bool

    def subscribe(self, on_assign: OnAssign, on_revoke: OnRevoke) -> None: ...
    def poll(self, max_messages: int, timeout_s: float) -> list[Record]: ...
    def rewind(self, offsets: Mapping[int, int | None]) -> None: ...
    def end_offsets(self, partitions: Collection[int]) -> dict[int, int]: ...
    def commit(self, next_offsets: Mapping[int, int], *, wait: bool) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Lag of one assigned partition."""

    topic: str
    partition: int
    next_offset: int
    end_offset: int

    @property
    def lag(self) -> int:
        return max(0, self.end_offset - self.next_offset)


class StatsConsumer:
    """Counts the price-updates topic into `stats`; `run` owns the thread, `stop` ends it."""

    def __init__(
        self,
        source: Source,
        processor: BatchProcessor,
        lock: threading.Lock,
        *,
        max_messages: int,
        poll_timeout_s: float,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._source = source
        self._processor = processor
        self._lock = lock
        self._max_messages = max_messages
        self._poll_timeout_s = poll_timeout_s
        self._retry = retry or RetryPolicy(initial_s=0.2, max_s=10.0)
        self._stop = threading.Event()
        self._assigned: set[int] = set()
        self._lag: dict[int, PartitionLag] = {}
        self.running = False
        # Why the last batch failed (the registry away, the state store failing) until one
        # succeeds: the consumer then pauses, retrying, and health says so.
        self._failing: str | None = None

    @property
    def healthy(self) -> bool:
        """Polling, with a broker reachable."""
        return self.unhealthy_reason() is None

    def unhealthy_reason(self) -> str | None:
        """Why the consumer is not healthy, or None when it is."""
        if not self.running:
            return "the consumer is not polling"
        if self._source.brokers_down:
            return "no Kafka broker reachable"
        return self._failing

    def snapshot(self) -> tuple[StatsSnapshot, tuple[PartitionLag, ...]]:
        """The group's statistics, and the lag of each partition assigned here."""
        stats = self._processor.snapshot()
        with self._lock:
            return stats, tuple(self._lag[p] for p in sorted(self._lag))

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and close (thread-safe)."""
        self._stop.set()

    async def run(self) -> None:
        """Run the loop on its thread until `stop()` or cancellation; waits for it to close."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()

        def main() -> None:
            try:
                self.run_blocking()
            # The thread boundary: whatever ends the loop is handed to its owner, not lost.
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, finished, exc)
            else:
                loop.call_soon_threadsafe(_settle, finished, None)

        thread = threading.Thread(target=main, name="price-update-consumer")
        thread.start()
        try:
            await asyncio.shield(finished)
        except asyncio.CancelledError:
            self.stop()
            # Closing takes at most one poll timeout plus the final commit; nothing outlives us.
            await asyncio.wait([finished])
            raise

    def run_blocking(self) -> None:
        """The loop itself, on the calling thread."""
        backoff = Backoff(self._retry)
        # A batch that failed part-way: restore the saved state and read it again first.
        failed: list[Record] | None = None
        try:
            # Each partition's state is read when the group assigns it (`_on_assign`).
            self._source.subscribe(self._on_assign, self._on_revoke)
            self.running = True
            while not self._stop.is_set():
                batch: list[Record] = []
                try:
                    if failed is not None:
                        self._recover(failed)
                        failed = None
                    batch = self._source.poll(self._max_messages, self._poll_timeout_s)
                    if batch:
                        self._processor.process(batch)
                        self._commit(batch)
                        backoff.reset()
                        self._failing = None
                    self._update_lag()
                except RECOVERABLE as exc:
                    self._failing = f"batches failing, retried: {exc}"
                    failed = batch or failed
                    delay = backoff.next_delay_s()
                    logger.warning(
                        "consumer batch failed, retrying in %.1f s: %s",
                        delay,
                        exc,
                        extra={"error": type(exc).__name__, "failures": backoff.attempt},
                    )
                    self._stop.wait(delay)
        finally:
            self.running = False
            self._close()

    def _commit(self, batch: Sequence[Record]) -> None:
        try:
            # Asynchronous: only lag monitoring reads the group's commits, so a batch need not
            # wait a broker round trip for them; revoke and shutdown commit synchronously.
            self._source.commit(self._next_offsets(batch), wait=False)
        except KafkaAdapterError as exc:
            logger.warning("offset commit failed: %s", exc)

    def _recover(self, failed: Sequence[Record]) -> None:
        self._processor.restore()
        # Partitions revoked meanwhile restart from the stored offsets when next assigned.
        partitions = sorted({r.partition for r in failed} & self._assigned)
        self._source.rewind({p: self._processor.next_offset(p) for p in partitions})
        logger.info("consumer recovered", extra={"rewound_partitions": partitions})

    def _next_offsets(self, records: Sequence[Record]) -> dict[int, int]:
        partitions = {record.partition for record in records}
        stored = {p: self._processor.next_offset(p) for p in partitions}
        return {p: o for p, o in stored.items() if o is not None}

    def _on_assign(self, partitions: list[int]) -> dict[int, int]:
        # With cooperative rebalancing only the partitions added come here; each starts where
        # its last owner's last saved batch ended, with that owner's statistics. Until that
        # state is read nothing of them may be counted, so a state store that is away is
        # waited for here (the group gives a member max.poll.interval.ms) rather than skipped.
        backoff = Backoff(self._retry)
        while True:
            try:
                starts = self._processor.assign(partitions)
                break
            except StoreError as exc:
                self._failing = f"cannot read the state of partitions {partitions}: {exc}"
                delay = backoff.next_delay_s()
                logger.warning("%s; retrying in %.1f s", self._failing, delay)
                if self._stop.wait(delay):
                    raise
        if backoff.attempt:
            self._failing = None
        self._assigned.update(partitions)
        return starts

    def _on_revoke(self, partitions: list[int]) -> None:
        # Batches are persisted before the next poll, and callbacks run inside poll: the state
        # of these partitions is already saved. Commit so the group's lag view is current.
        stored = {p: self._processor.next_offset(p) for p in partitions}
        try:
            self._source.commit({p: o for p, o in stored.items() if o is not None}, wait=True)
        except KafkaAdapterError as exc:
            logger.warning("commit on revoke failed: %s", exc)
        self._processor.revoke(partitions)
        self._assigned.difference_update(partitions)
        with self._lock:
            for partition in partitions:
                self._lag.pop(partition, None)

    def _update_lag(self) -> None:
        topic = self._source.topic
        ends = self._source.end_offsets(self._assigned)
        lag = {
            p: PartitionLag(topic, p, self._processor.next_offset(p) or 0, end)
            for p, end in ends.items()
        }
        with self._lock:
            self._lag = lag

    def _close(self) -> None:
        topic = self._source.topic
        stored = {p: self._processor.next_offset(p) for p in self._assigned}
        try:
            self._source.commit({p: o for p, o in stored.items() if o is not None}, wait=True)
        except KafkaAdapterError as exc:
            logger.warning("final commit failed: %s", exc)
        self._source.close()
        logger.info("consumer closed", extra={"topic": topic})


def _settle(future: "asyncio.Future[None]", exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)

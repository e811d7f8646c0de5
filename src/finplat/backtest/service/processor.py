"""One batch of records: decode, count, dead-letter the rejected, persist with the offsets.

A record is rejected when it cannot be decoded or its update fails the statistics' checks;
either way it is counted once under its `RejectReason`, dead-lettered with the reason, and
leaves no trace in the statistics.

The unit of work of the consumer, free of Kafka's client so it can be tested on its own. After
`process` raises, the in-memory state may hold part of the failed batch: the caller must call
`restore` (which reloads the last persisted state) and read the batch's partitions again from
`next_offset`. That is how a failure costs a retry but never a loss or a double count.
"""

import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from finplat.backtest.adapters.consumer_state import PartitionChanges, SavedPartition
from finplat.backtest.domain.stats import StatsSnapshot, StreamStats, merge_snapshots
from finplat.backtest.domain.update_checks import PriceFields, RejectedUpdateError, RejectReason
from finplat.kafka.consumer import Record
from finplat.kafka.errors import DecodeError

logger = logging.getLogger(__name__)

Decoder = Callable[[bytes | None], PriceFields]
"""`PriceRecordDeserializer` in production; `PriceUpdateDeserializer` gives the same results."""


class DeadLetters(Protocol):
    """Where rejected messages go (`DeadLetterProducer`)."""

    def send(self, record: Record, reason: str) -> None:
        """Queue one dead letter."""
        ...

    def flush(self, timeout_s: float) -> None:
        """Return once all are acknowledged; raise otherwise."""
        ...


class StateStore(Protocol):
    """Durable per-partition consumer state (`ConsumerStateStore`)."""

    def claim(self, partitions: Collection[int]) -> dict[int, SavedPartition]:
        """Own `partitions` from now on; their saved state."""
        ...

    def load(self, partitions: Collection[int]) -> dict[int, SavedPartition]:
        """The saved state of partitions owned."""
        ...

    def release(self, partitions: Collection[int]) -> None:
        """Own these no more."""
        ...

    def save(self, changes: Mapping[int, PartitionChanges]) -> None:
        """Save one batch's outcome atomically."""
        ...

    def others(self, owned: Collection[int]) -> dict[int, dict[str, Any]]:
        """Saved statistics of the partitions not in `owned`."""
        ...


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one batch did."""

    counted: int
    duplicates: int
    dead_lettered: int


class BatchProcessor:
    """The statistics and next offsets of the partitions this consumer owns, one `StreamStats`
    each, so a partition's state can move to another member of the group with its offset;
    `lock` guards them against readers."""

    def __init__(
        self,
        new_stats: Callable[[], StreamStats],
        decode: Decoder,
        dead_letters: DeadLetters,
        store: StateStore,
        lock: threading.Lock,
        dead_letter_timeout_s: float,
    ) -> None:
        self._new_stats = new_stats
        self._decode = decode
        self._dead_letters = dead_letters
        self._store = store
        self._lock = lock
        self._dead_letter_timeout_s = dead_letter_timeout_s
        self._stats: dict[int, StreamStats] = {}
        self._next_offsets: dict[int, int] = {}

    def next_offset(self, partition: int) -> int | None:
        """Offset after the last persisted message of a partition; None if nothing was read."""
        return self._next_offsets.get(partition)

    def assign(self, partitions: Collection[int]) -> dict[int, int]:
        """Take over `partitions` with the state their last owner saved; where each starts
        (absent: at the beginning, nothing was ever saved)."""
        self._install(self._store.claim(partitions), "claimed")
        return {p: o for p in partitions if (o := self._next_offsets.get(p)) is not None}

    def revoke(self, partitions: Collection[int]) -> None:
        """Hand `partitions` back: their state is saved (batches are, before the next poll)."""
        self._store.release(partitions)
        with self._lock:
            for partition in partitions:
                self._stats.pop(partition, None)
                self._next_offsets.pop(partition, None)

    def restore(self) -> None:
        """Replace the owned partitions' in-memory state with the persisted one; partitions
        another consumer has claimed meanwhile are dropped."""
        saved = self._store.load(list(self._stats))
        lost = set(self._stats) - set(saved)
        if lost:
            logger.warning("partitions lost to another consumer", extra={"partitions": lost})
            self.revoke(lost)
        self._install(saved, "restored")

    def _install(self, saved: Mapping[int, SavedPartition], what: str) -> None:
        fresh = {}
        for partition, state in saved.items():
            stats = self._new_stats()
            if state.stats is not None:
                stats.load_state(state.stats)
            stats.dedup.restore(state.seen)
            fresh[partition] = stats
        with self._lock:
            self._stats.update(fresh)
            for partition, state in saved.items():
                if state.next_offset is None:
                    self._next_offsets.pop(partition, None)
                else:
                    self._next_offsets[partition] = state.next_offset
        logger.info(
            "consumer state %s",
            what,
            extra={
                "partitions": {
                    p: {"next_offset": s.next_offset, "total_messages": fresh[p].total}
                    for p, s in sorted(saved.items())
                }
            },
        )

    def snapshot(self) -> StatsSnapshot:
        """The whole group's statistics: the partitions owned here as they are now, the others
        as their owners last saved them."""
        with self._lock:
            owned = {p: stats.snapshot() for p, stats in self._stats.items()}
        others = []
        for state in self._store.others(owned).values():
            stats = self._new_stats()
            stats.load_state(state)
            others.append(stats.snapshot())
        return merge_snapshots([*owned.values(), *others])

    def process(self, records: Sequence[Record]) -> BatchOutcome:
        """Count the batch and persist it with its next offsets, dead letters acknowledged."""
        # Decoded before the lock is taken: a writer schema not seen yet is fetched from the
        # registry, and readers of the statistics (GetStats, /metrics) must not wait on that.
        # The loops run once per message of the stream: no call or object they can do without.
        decode = self._decode
        decoded: list[PriceFields | DecodeError] = []
        for record in records:
            try:
                decoded.append(decode(record.value))
            except DecodeError as exc:
                decoded.append(exc)
        with self._lock:
            counted, duplicates, poison, touched = self._count(records, decoded)
            # Per partition, the offset after its last record in the batch.
            self._next_offsets.update(
                {record.partition: record.offset + 1 for record in records
                 if record.partition in touched}
            )  # fmt: skip
        if poison:
            # Acknowledged before the offsets move past them: a dead letter is never lost.
            for record, reason in poison:
                self._dead_letters.send(record, reason)
            self._dead_letters.flush(self._dead_letter_timeout_s)
        with self._lock:
            for record, _ in poison:
                touched[record.partition].dead_lettered += 1
            changes = {
                partition: PartitionChanges(
                    stats.to_state(), stats.dedup.take_changes(), self._next_offsets[partition]
                )
                for partition, stats in touched.items()
            }
        if changes:
            self._store.save(changes)
        return BatchOutcome(counted, duplicates, len(poison))

    def _count(
        self, records: Sequence[Record], decoded: Sequence[PriceFields | DecodeError]
    ) -> tuple[int, int, list[tuple[Record, str]], dict[int, StreamStats]]:
        """Counted, duplicates, the rejected with their reasons, the partitions touched."""
        poison: list[tuple[Record, str]] = []
        counted = duplicates = 0
        owned = self._stats
        touched: dict[int, StreamStats] = {}
        current, stats = -1, None
        for record, update in zip(records, decoded, strict=True):
            # A fetch brings runs of one partition: its statistics are looked up per run.
            if record.partition != current:
                current, stats = record.partition, owned.get(record.partition)
                if stats is not None:
                    touched[current] = stats
            if stats is None:
                # Fetched before the partition was taken away: its new owner reads it.
                continue
            if isinstance(update, DecodeError):
                stats.reject(RejectReason.UNDECODABLE)
                poison.append((record, f"{RejectReason.UNDECODABLE}: {update}"))
                continue
            try:
                if stats.observe(update):
                    counted += 1
                else:
                    duplicates += 1
            except RejectedUpdateError as exc:
                stats.reject(exc.reason)
                poison.append((record, str(exc)))
        return counted, duplicates, poison, touched

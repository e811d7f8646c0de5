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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from finplat.backtest.adapters.consumer_state import SavedState, TopicPartitionKey
from finplat.backtest.domain.dedup import DedupChanges
from finplat.backtest.domain.stats import StreamStats
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
    """Durable consumer state (`ConsumerStateStore`)."""

    def load(self) -> SavedState:
        """The last saved state."""
        ...

    def save(
        self,
        stats: dict[str, Any],
        seen: DedupChanges,
        offsets: dict[TopicPartitionKey, int],
    ) -> None:
        """Save one batch's outcome atomically."""
        ...


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one batch did."""

    counted: int
    duplicates: int
    dead_lettered: int


class BatchProcessor:
    """Holds the statistics and the next offsets; `lock` guards them against readers."""

    def __init__(
        self,
        stats: StreamStats,
        decode: Decoder,
        dead_letters: DeadLetters,
        store: StateStore,
        lock: threading.Lock,
        dead_letter_timeout_s: float,
    ) -> None:
        self._stats = stats
        self._decode = decode
        self._dead_letters = dead_letters
        self._store = store
        self._lock = lock
        self._dead_letter_timeout_s = dead_letter_timeout_s
        self._next_offsets: dict[TopicPartitionKey, int] = {}

    def next_offset(self, topic: str, partition: int) -> int | None:
        """Offset after the last persisted message of a partition; None if nothing was read."""
        return self._next_offsets.get((topic, partition))

    def restore(self) -> None:
        """Replace the in-memory state with the persisted one."""
        saved = self._store.load()
        with self._lock:
            stats = self._stats
            stats.load_state(saved.stats or _EMPTY_STATE)
            stats.dedup.restore(saved.seen)
            self._next_offsets = dict(saved.offsets)
        logger.info(
            "consumer state restored",
            extra={
                "total_messages": stats.total,
                "seen_keys": len(saved.seen),
                "offsets": {f"{t}/{p}": o for (t, p), o in sorted(saved.offsets.items())},
            },
        )

    def process(self, records: Sequence[Record]) -> BatchOutcome:
        """Count the batch and persist it with its next offsets, dead letters acknowledged."""
        poison: list[tuple[Record, str]] = []
        counted = duplicates = 0
        stats = self._stats
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
        observe = stats.observe
        with self._lock:
            for record, update in zip(records, decoded, strict=True):
                if isinstance(update, DecodeError):
                    stats.reject(RejectReason.UNDECODABLE)
                    poison.append((record, f"{RejectReason.UNDECODABLE}: {update}"))
                    continue
                try:
                    if observe(update):
                        counted += 1
                    else:
                        duplicates += 1
                except RejectedUpdateError as exc:
                    stats.reject(exc.reason)
                    poison.append((record, str(exc)))
            # Per partition, the offset after its last record in the batch.
            self._next_offsets.update(
                {(record.topic, record.partition): record.offset + 1 for record in records}
            )
        if poison:
            # Acknowledged before the offsets move past them: a dead letter is never lost.
            for record, reason in poison:
                self._dead_letters.send(record, reason)
            self._dead_letters.flush(self._dead_letter_timeout_s)
        with self._lock:
            stats.dead_lettered += len(poison)
            state = stats.to_state()
            seen = stats.dedup.take_changes()
            offsets = dict(self._next_offsets)
        self._store.save(state, seen, offsets)
        return BatchOutcome(counted, duplicates, len(poison))


_EMPTY_STATE: dict[str, Any] = {
    "total": 0,
    "decode_errors": 0,
    "dead_lettered": 0,
    "duplicates": 0,
    "rejected": {},
    "symbols": {},
}

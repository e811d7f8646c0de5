"""Reads PriceUpdates from Kafka; offsets are committed only after processing.

One librdkafka consumer for every reader: the probe and tests (group membership, start offsets
from the group's commits or chosen by hand) and the backtest statistics, whose assignment
callback says where each partition starts because the offsets stored in SQLite with the
statistics are the source of truth. Broker errors are logged as they come (librdkafka
reconnects by itself) and remembered for health reports.
"""

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import NamedTuple

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from finplat.core.connections import KafkaSettings
from finplat.kafka.errors import BROKERS_DOWN, KafkaAdapterError

logger = logging.getLogger(__name__)

OnAssign = Callable[[list[int]], Mapping[int, int]]
"""Partitions assigned -> the offset to start each at (missing: the beginning)."""
OnRevoke = Callable[[list[int]], None]


# A tuple, built by one C call: a frozen dataclass's __init__ took twice as long, per message
# of a consumer that reads tens of thousands a second.
class Record(NamedTuple):
    """One consumed message, in our terms rather than librdkafka's."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def _headers(
    pairs: list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None],
) -> tuple[tuple[str, bytes], ...]:
    # librdkafka returns a list of pairs; the stubs also allow a dict.
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return tuple(
        (name, data.encode() if isinstance(data, str) else data or b"") for name, data in items
    )


def record_of(message: Message) -> Record:
    """Our Record of a consumed librdkafka message."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise KafkaAdapterError("consumed a message without topic, partition or offset")
    key, value, headers = message.key(), message.value(), message.headers()
    return Record(
        topic,
        partition,
        offset,
        key if isinstance(key, bytes) else None,
        value if isinstance(value, bytes) else None,
        _headers(headers) if headers else (),
    )


def next_offsets(processed: Iterable[Record]) -> dict[int, int]:
    """The offset after the last of `processed` per partition: what a commit marks as done."""
    offsets: dict[int, int] = {}
    for record in processed:
        offsets[record.partition] = max(offsets.get(record.partition, 0), record.offset + 1)
    return offsets


class PriceUpdateConsumer:
    """At-least-once: nothing is committed automatically; `commit` marks what was processed.

    Every method is called from one thread, the consumer's.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        config: Mapping[str, object] | None = None,
    ) -> None:
        self.topic = settings.topic
        self.brokers_down = False
        """True from a broker-unreachable error until messages arrive again."""
        # The Python client does not expose librdkafka's rebalance_protocol(): the strategy
        # configured says it (cooperative-sticky is the one cooperative assignor).
        strategy = str((config or {}).get("partition.assignment.strategy", ""))
        self._cooperative = strategy == "cooperative-sticky"
        self._consumer = Consumer(
            {
                **settings.client_config(),
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "error_cb": self._on_error,
                **(config or {}),
            }
        )

    def _on_error(self, error: KafkaError) -> None:
        self.brokers_down = error.code() in BROKERS_DOWN
        logger.warning(
            "kafka client error: %s",
            error.str(),
            extra={"code": error.name(), "fatal": error.fatal(), "topic": self.topic},
        )

    def subscribe(
        self, on_assign: OnAssign | None = None, on_revoke: OnRevoke | None = None
    ) -> None:
        """Join the group on the topic; partitions start where `on_assign` says, or, without
        it, after the group's last commit (the beginning for a new group)."""

        def assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            if on_assign is not None:
                starts = on_assign([tp.partition for tp in partitions])
                for tp in partitions:
                    tp.offset = starts.get(tp.partition, OFFSET_BEGINNING)
            # Offsets set here, not by seek(): seek only works once a partition is fetching.
            # A cooperative group hands over only the partitions added, kept beside the others.
            if self._cooperative:
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)
            logger.info(
                "partitions assigned",
                extra={
                    "topic": self.topic,
                    "starts": {tp.partition: tp.offset for tp in partitions},
                },
            )

        def revoke(_: Consumer, partitions: list[TopicPartition]) -> None:
            if on_revoke is not None:
                on_revoke([tp.partition for tp in partitions])
            logger.info(
                "partitions revoked",
                extra={"topic": self.topic, "partitions": [tp.partition for tp in partitions]},
            )

        self._consumer.subscribe([self.topic], on_assign=assign, on_revoke=revoke)

    def assign(self, offsets: Mapping[int, int]) -> None:
        """Read the given partitions from the given offsets, outside group management."""
        self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in offsets.items()])

    def poll(self, max_messages: int, timeout_s: float) -> list[Record]:
        """Up to `max_messages` records; message-level errors raise, partition EOF is skipped."""
        try:
            messages = self._consumer.consume(max_messages, timeout_s)
        except KafkaException as exc:
            raise KafkaAdapterError(f"consume failed: {exc}") from exc
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(record_of(message))
            elif error.code() != KafkaError._PARTITION_EOF:
                raise KafkaAdapterError(f"consume failed: {error.str()}")
        if records:
            self.brokers_down = False
        return records

    def rewind(self, offsets: Mapping[int, int | None]) -> None:
        """Read these (actively fetched) partitions again from the given offsets."""
        for partition, offset in offsets.items():
            start = OFFSET_BEGINNING if offset is None else offset
            try:
                self._consumer.seek(TopicPartition(self.topic, partition, start))
            except KafkaException as exc:
                raise KafkaAdapterError(f"cannot seek partition {partition}: {exc}") from exc

    def topic_end_offsets(self, timeout_s: float = 10.0) -> dict[int, int]:
        """The offset after the last message of every partition, asked of the broker."""
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=timeout_s)
            partitions = metadata.topics[self.topic].partitions
            return {
                partition: self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=timeout_s
                )[1]
                for partition in sorted(partitions)
            }
        except KafkaException as exc:
            raise KafkaAdapterError(f"cannot read offsets of {self.topic}: {exc}") from exc

    def end_offsets(self, partitions: Collection[int]) -> dict[int, int]:
        """High watermarks as last seen in fetch responses (no broker round trip)."""
        ends = {}
        for partition in partitions:
            tp = TopicPartition(self.topic, partition)
            try:
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                ends[partition] = high
        return ends

    def commit(self, offsets: Mapping[int, int], *, wait: bool = True) -> None:
        """Commit the next offset to read per partition (see `next_offsets`)."""
        if not offsets:
            return
        pairs = [TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())]
        try:
            # Two calls, not `asynchronous=not wait`: the stubs type each literal apart.
            if wait:
                self._consumer.commit(offsets=pairs, asynchronous=False)
            else:
                self._consumer.commit(offsets=pairs, asynchronous=True)
        except KafkaException as exc:
            raise KafkaAdapterError(f"commit failed: {exc}") from exc

    def close(self) -> None:
        """Leave the group (revoking the partitions) so they are reassigned at once."""
        self._consumer.close()

"""Reads PriceUpdates in a consumer group; offsets are committed only after processing."""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from finplat.core.connections import KafkaSettings
from finplat.kafka.errors import KafkaAdapterError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message, in our terms rather than librdkafka's."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def _header_pairs(message: Message) -> list[tuple[str, str | bytes | None]]:
    headers = message.headers() or []
    # librdkafka returns a list of pairs; the stubs also allow a dict.
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def record_of(message: Message) -> Record:
    """Our Record of a consumed librdkafka message."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise KafkaAdapterError("consumed a message without topic, partition or offset")
    key, value = message.key(), message.value()
    return Record(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key if isinstance(key, bytes) else None,
        value=value if isinstance(value, bytes) else None,
        headers=tuple(
            (name, data.encode() if isinstance(data, str) else data or b"")
            for name, data in _header_pairs(message)
        ),
    )


class PriceUpdateConsumer:
    """At-least-once: nothing is committed automatically; `commit` marks what was processed."""

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        config: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        self._topic = settings.topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **(config or {}),
            }
        )

    def subscribe(self) -> None:
        """Join the group on the PriceUpdate topic."""
        self._consumer.subscribe([self._topic], on_assign=_log_assign, on_revoke=_log_revoke)

    def end_offsets(self, timeout_s: float = 10.0) -> dict[int, int]:
        """The offset after the last message of every partition of the topic."""
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=timeout_s)
            partitions = metadata.topics[self._topic].partitions
            return {
                partition: self._consumer.get_watermark_offsets(
                    TopicPartition(self._topic, partition), timeout=timeout_s
                )[1]
                for partition in sorted(partitions)
            }
        except KafkaException as exc:
            raise KafkaAdapterError(f"cannot read offsets of {self._topic}: {exc}") from exc

    def assign(self, offsets: Mapping[int, int]) -> None:
        """Read the given partitions from the given offsets, outside group management."""
        self._consumer.assign([TopicPartition(self._topic, p, o) for p, o in offsets.items()])

    def poll(self, max_messages: int, timeout_s: float) -> list[Record]:
        """Up to `max_messages` records; broker-side errors are raised, partition EOF skipped."""
        messages = self._consumer.consume(max_messages, timeout_s)
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(record_of(message))
            elif error.code() != KafkaError._PARTITION_EOF:
                raise KafkaAdapterError(f"consume failed: {error.str()}")
        return records

    def commit(self, processed: Sequence[Record]) -> None:
        """Commit, synchronously, the offset after the last processed record per partition."""
        next_offsets: dict[tuple[str, int], int] = {}
        for record in processed:
            key = (record.topic, record.partition)
            next_offsets[key] = max(next_offsets.get(key, 0), record.offset + 1)
        if not next_offsets:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(next_offsets.items())]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise KafkaAdapterError(f"commit failed: {exc}") from exc

    def close(self) -> None:
        """Leave the group cleanly so its partitions are reassigned at once."""
        self._consumer.close()


def _log_assign(_: Consumer, partitions: list[TopicPartition]) -> None:
    logger.info("partitions assigned", extra={"partitions": [p.partition for p in partitions]})


def _log_revoke(_: Consumer, partitions: list[TopicPartition]) -> None:
    logger.info("partitions revoked", extra={"partitions": [p.partition for p in partitions]})

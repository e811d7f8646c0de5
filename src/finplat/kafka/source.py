"""The consumer side of Kafka for the statistics: a group member whose start offsets we choose.

`consumer.PriceUpdateConsumer` logs rebalances but lets librdkafka pick the start offsets;
here the assignment callback asks the owner where each partition starts, because the offsets
stored in SQLite with the statistics are the source of truth. Broker errors are logged as they
come (librdkafka reconnects by itself) and remembered for the health report.
"""

import logging
from collections.abc import Callable, Collection, Mapping

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from finplat.core.connections import KafkaSettings
from finplat.kafka.consumer import Record, record_of
from finplat.kafka.errors import KafkaAdapterError

logger = logging.getLogger(__name__)

OnAssign = Callable[[list[int]], Mapping[int, int]]
"""Partitions assigned -> the offset to start each at (missing: the beginning)."""
OnRevoke = Callable[[list[int]], None]

# Errors that mean "no broker reachable right now"; librdkafka keeps retrying meanwhile.
_DOWN = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT})


class PriceUpdateSource:
    """One librdkafka consumer; every method is called from the consumer's thread only."""

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        config: Mapping[str, object] | None = None,
    ) -> None:
        self.topic = settings.topic
        self.brokers_down = False
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "error_cb": self._on_error,
                **(config or {}),
            }
        )

    def _on_error(self, error: KafkaError) -> None:
        self.brokers_down = error.code() in _DOWN
        logger.warning(
            "kafka client error: %s",
            error.str(),
            extra={"code": error.name(), "fatal": error.fatal(), "topic": self.topic},
        )

    def subscribe(self, on_assign: OnAssign, on_revoke: OnRevoke) -> None:
        """Join the group; partitions start where `on_assign` says."""

        def assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            starts = on_assign([tp.partition for tp in partitions])
            for tp in partitions:
                tp.offset = starts.get(tp.partition, OFFSET_BEGINNING)
            # Offsets set here, not by seek(): seek only works once a partition is fetching.
            consumer.assign(partitions)
            logger.info(
                "partitions assigned",
                extra={
                    "topic": self.topic,
                    "starts": {tp.partition: tp.offset for tp in partitions},
                },
            )

        def revoke(_: Consumer, partitions: list[TopicPartition]) -> None:
            on_revoke([tp.partition for tp in partitions])
            logger.info(
                "partitions revoked",
                extra={"topic": self.topic, "partitions": [tp.partition for tp in partitions]},
            )

        self._consumer.subscribe([self.topic], on_assign=assign, on_revoke=revoke)

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

    def commit(self, next_offsets: Mapping[int, int], *, wait: bool) -> None:
        """Commit next offsets to the group (for lag monitoring; SQLite is the truth)."""
        if not next_offsets:
            return
        offsets = [TopicPartition(self.topic, p, o) for p, o in sorted(next_offsets.items())]
        try:
            if wait:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            raise KafkaAdapterError(f"commit failed: {exc}") from exc

    def close(self) -> None:
        """Leave the group (revoking the partitions) and release librdkafka."""
        self._consumer.close()

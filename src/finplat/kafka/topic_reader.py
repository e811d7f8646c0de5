"""A consumer outside any consumer group, reading partitions from offsets it picks itself.

The price service's readers need no group: every instance reads every partition, the live
reader from the end and a resumed stream from a time, and neither commits anything, so a group
would only add rebalances and commits to clean up. The group id librdkafka asks for is made
unique and never joined (no `subscribe`, no commit).
"""

import uuid
from collections.abc import Collection, Mapping

from confluent_kafka import OFFSET_END, KafkaError, KafkaException, TopicPartition

from finplat.core.connections import KafkaSettings
from finplat.kafka.consumer import PriceUpdateConsumer, Record, record_of
from finplat.kafka.errors import KafkaAdapterError


class TopicReader(PriceUpdateConsumer):
    """`assign` partitions at offsets found with `offsets_for_time` or `watermarks`, then
    `poll_ready`; `positions` says how far each one has been read."""

    def __init__(self, settings: KafkaSettings, name: str) -> None:
        # Never joined: unique so that no group's offsets or members are ever touched.
        super().__init__(settings, f"{name}-{uuid.uuid4().hex}")

    def watermarks(self, timeout_s: float) -> dict[int, tuple[int, int]]:
        """(first offset still held, offset after the last message) of every partition."""
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=timeout_s)
            topic = metadata.topics[self.topic]
            if topic.error is not None:
                raise KafkaAdapterError(f"cannot read {self.topic}: {topic.error.str()}")
            return {
                partition: self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=timeout_s
                )
                for partition in sorted(topic.partitions)
            }
        except KafkaException as exc:
            raise KafkaAdapterError(f"cannot read offsets of {self.topic}: {exc}") from exc

    def offsets_for_time(
        self, time_ms: int, partitions: Collection[int], timeout_s: float
    ) -> dict[int, int | None]:
        """Per partition, the first offset whose message time is `time_ms` or later; None where
        every message is older."""
        query = [TopicPartition(self.topic, partition, time_ms) for partition in partitions]
        try:
            found = self._consumer.offsets_for_times(query, timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaAdapterError(f"cannot search {self.topic} by time: {exc}") from exc
        offsets: dict[int, int | None] = {}
        for tp in found:
            if tp.error is not None:
                raise KafkaAdapterError(
                    f"cannot search partition {tp.partition} by time: {tp.error.str()}"
                )
            offsets[tp.partition] = None if tp.offset == OFFSET_END else tp.offset
        return offsets

    def positions(self, starts: Mapping[int, int]) -> dict[int, int]:
        """The next offset to read of each assigned partition; `starts` (where it was assigned)
        until librdkafka has fetched from it."""
        try:
            current = self._consumer.position(
                [TopicPartition(self.topic, partition) for partition in starts]
            )
        except KafkaException as exc:
            raise KafkaAdapterError(f"cannot read positions in {self.topic}: {exc}") from exc
        return {tp.partition: max(tp.offset, starts[tp.partition]) for tp in current}

    def poll_ready(self, max_messages: int, timeout_s: float) -> list[Record]:
        """Like `poll`, but back as soon as a message is there: librdkafka's batch consume waits
        its whole timeout unless the batch fills, which on a quiet topic is that much latency.
        Waits up to `timeout_s` for one message, then takes what else is already fetched."""
        try:
            first = self._consumer.poll(timeout_s)
        except KafkaException as exc:
            raise KafkaAdapterError(f"consume failed: {exc}") from exc
        if first is None:
            return []
        error = first.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            raise KafkaAdapterError(f"consume failed: {error.str()}")
        if error is not None:
            return []
        self.brokers_down = False
        rest = self.poll(max_messages - 1, 0) if max_messages > 1 else []
        return [record_of(first), *rest]

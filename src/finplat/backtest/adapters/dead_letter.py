"""The dead-letter topic: messages the consumer cannot read, kept with why and where from.

Headers: the original ones first, then `finplat-error` (the reason) and
`finplat-original-topic`, `-partition`, `-offset`, so the message can be found and replayed.
Key and value are kept byte for byte.
"""

import logging
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from finplat.core.connections import KafkaSettings
from finplat.kafka.consumer import Record
from finplat.kafka.errors import DeliveryError

logger = logging.getLogger(__name__)

ERROR_HEADER = "finplat-error"
TOPIC_HEADER = "finplat-original-topic"
PARTITION_HEADER = "finplat-original-partition"
OFFSET_HEADER = "finplat-original-offset"
# Kafka headers have no hard limit, but a reason is a sentence, not a dump.
_MAX_REASON_BYTES = 2000


def dead_letter_headers(record: Record, reason: str) -> list[tuple[str, str | bytes | None]]:
    """The headers of a dead letter for `record`."""
    return [
        *record.headers,
        (ERROR_HEADER, reason.encode()[:_MAX_REASON_BYTES]),
        (TOPIC_HEADER, record.topic.encode()),
        (PARTITION_HEADER, str(record.partition).encode()),
        (OFFSET_HEADER, str(record.offset).encode()),
    ]


class DeadLetterProducer:
    """Produces dead letters; `flush` tells whether all of them reached the broker."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        config: Mapping[str, object] | None = None,
    ) -> None:
        self.topic = topic
        self._producer = Producer(
            {
                **settings.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                **(config or {}),
            }
        )
        self._failures: list[str] = []

    def _on_delivery(self, error: KafkaError | None, _: Message) -> None:
        if error is not None:
            self._failures.append(error.str())

    def send(self, record: Record, reason: str) -> None:
        """Queue the dead letter of `record`."""
        try:
            self._producer.produce(
                self.topic,
                key=record.key,
                value=record.value,
                headers=dead_letter_headers(record, reason),
                on_delivery=self._on_delivery,
            )
        except (BufferError, KafkaException) as exc:
            raise DeliveryError(f"cannot queue a dead letter to {self.topic}: {exc}") from exc
        logger.warning(
            "message dead-lettered: %s",
            reason,
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )

    def flush(self, timeout_s: float) -> None:
        """Wait until every queued dead letter is acknowledged; `DeliveryError` otherwise."""
        remaining = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        if remaining or failures:
            raise DeliveryError(
                f"{remaining} dead letters pending, {len(failures)} failed: {failures[:3]}"
            )

    def close(self, timeout_s: float) -> None:
        """Deliver what is queued, as far as the timeout allows."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            logger.error("%d dead letters not delivered at shutdown", remaining)

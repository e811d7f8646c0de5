"""Publishes PriceUpdates: idempotent, acks=all, key = symbol, every delivery accounted for."""

import logging
from collections.abc import Callable, Mapping

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from finance.market.v1 import market_pb2
from finplat.core.connections import KafkaSettings
from finplat.kafka.errors import BROKERS_DOWN, DeliveryError, QueueFullError

logger = logging.getLogger(__name__)

Serializer = Callable[[market_pb2.PriceUpdate], bytes]


class PriceUpdateProducer:
    """A librdkafka producer whose local queue is the bounded buffer while Kafka is away.

    librdkafka retries retriable errors by itself until `delivery.timeout.ms`; idempotence keeps
    those retries from duplicating or reordering messages within a partition.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        serializer: Serializer,
        config: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        self._topic = settings.topic
        self._serializer = serializer
        self._producer = Producer(
            {
                **settings.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                "error_cb": self._on_error,
                **(config or {}),
            }
        )
        self.delivered = 0
        self.failed = 0
        self.brokers_down = False
        """True from a broker-unreachable error until a delivery succeeds again."""

    def _on_error(self, error: KafkaError) -> None:
        if error.code() in BROKERS_DOWN:
            self.brokers_down = True
        logger.warning(
            "kafka client error: %s",
            error.str(),
            extra={"code": error.name(), "fatal": error.fatal(), "topic": self._topic},
        )

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
            self.brokers_down = False
            return
        self.failed += 1
        logger.error(
            "delivery failed: %s",
            error.str(),
            extra={"topic": message.topic(), "key": message.key(), "retriable": error.retriable()},
        )

    def send(self, update: market_pb2.PriceUpdate) -> None:
        """Queue one update; QueueFullError when librdkafka's bounded queue has no room."""
        value = self._serializer(update)
        for attempt in range(2):
            try:
                self._producer.produce(
                    self._topic,
                    key=update.symbol.encode(),
                    value=value,
                    on_delivery=self._on_delivery,
                )
            except BufferError as exc:
                if attempt == 0:
                    # Serving delivery reports frees queue space when the broker is keeping up.
                    self._producer.poll(0)
                    continue
                raise QueueFullError(f"producer queue for {self._topic} is full") from exc
            except KafkaException as exc:
                raise DeliveryError(f"cannot produce to {self._topic}: {exc}") from exc
            break
        self._producer.poll(0)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports; returns how many were served."""
        served: int = self._producer.poll(timeout_s)
        return served

    def pending(self) -> int:
        """Messages queued locally or in flight, not yet acknowledged."""
        return len(self._producer)

    def flush(self, timeout_s: float) -> int:
        """Wait for outstanding deliveries; returns how many are still pending."""
        remaining: int = self._producer.flush(timeout_s)
        if remaining:
            logger.warning("%d messages not delivered before flush timeout", remaining)
        return remaining

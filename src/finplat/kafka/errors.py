"""Errors of the Kafka adapter, translated from confluent-kafka's."""

from confluent_kafka import KafkaError

# librdkafka's errors that mean "no broker reachable right now"; it keeps retrying meanwhile.
BROKERS_DOWN = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT})


class KafkaAdapterError(Exception):
    """Root of the adapter's errors."""

    retriable = False


class DeliveryError(KafkaAdapterError):
    """A message could not be delivered."""


class DecodeError(KafkaAdapterError):
    """A message's value is not a PriceUpdate this consumer can read."""


class QueueFullError(KafkaAdapterError):
    """The local queue is full: the broker is away or slower than the producer."""

    retriable = True


class RegistryUnavailableError(KafkaAdapterError):
    """The Schema Registry could not register or fetch a schema."""

    retriable = True

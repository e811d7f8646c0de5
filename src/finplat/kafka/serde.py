"""PriceUpdate <-> Confluent-framed Avro, the schema registered under the topic's subject."""

import json
from collections.abc import Callable
from typing import Any

import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from finance.market.v1 import market_pb2
from finplat.contract import avro
from finplat.contract.errors import ContractError
from finplat.core.connections import KafkaSettings
from finplat.kafka.errors import DecodeError, RegistryUnavailableError


def registry_client(settings: KafkaSettings) -> SchemaRegistryClient:
    """A registry client for the serializers (Confluent API, so Apicurio's ccompat works too)."""
    return SchemaRegistryClient(
        {"url": settings.schema_registry_url, "timeout": settings.schema_registry_timeout_s}
    )


def _schema_str() -> str:
    # Derived from the compiled descriptor: the same schema that schemas/ holds (checked fresh
    # in CI), without depending on the working directory.
    return json.dumps(avro.schema_of(market_pb2.PriceUpdate.DESCRIPTOR))


def _to_dict(update: market_pb2.PriceUpdate, _: SerializationContext) -> dict[str, Any]:
    return avro.to_record(update)


def _from_dict(record: dict[str, Any], _: SerializationContext) -> market_pb2.PriceUpdate:
    return avro.from_record(record, market_pb2.PriceUpdate)


class PriceUpdateSerializer:
    """Encodes values with Confluent's AvroSerializer; registers the schema on first use."""

    def __init__(self, registry: SchemaRegistryClient, topic: str) -> None:
        self._inner = AvroSerializer(registry, _schema_str(), _to_dict)
        self._context = SerializationContext(topic, MessageField.VALUE)

    def __call__(self, update: market_pb2.PriceUpdate) -> bytes:
        """Confluent-framed Avro; ContractError for an update Avro cannot hold."""
        try:
            encoded: bytes = self._inner(update, self._context)
        except (SchemaRegistryError, httpx.HTTPError, OSError) as exc:
            raise RegistryUnavailableError(f"schema registry: {exc}") from exc
        except SerializationError as exc:
            # The serializer wraps what to_dict raised; bad data stays a contract error.
            if isinstance(exc.__cause__, ContractError):
                raise exc.__cause__ from exc
            raise RegistryUnavailableError(f"cannot serialize: {exc}") from exc
        return encoded


class PriceUpdateDeserializer:
    """Decodes values written with any registered version, read with our schema."""

    def __init__(self, registry: SchemaRegistryClient, topic: str) -> None:
        self._inner: Callable[[bytes | None, SerializationContext], Any] = AvroDeserializer(
            registry, _schema_str(), _from_dict
        )
        self._context = SerializationContext(topic, MessageField.VALUE)

    def __call__(self, value: bytes | None) -> market_pb2.PriceUpdate:
        if value is None:
            raise DecodeError("message has no value (a tombstone)")
        try:
            decoded = self._inner(value, self._context)
        except (
            SerializationError,
            ContractError,
            ValueError,
            TypeError,
            EOFError,
            KeyError,
        ) as exc:
            raise DecodeError(f"not a PriceUpdate: {exc}") from exc
        if not isinstance(decoded, market_pb2.PriceUpdate):
            raise DecodeError(f"decoded to {type(decoded).__name__}, not a PriceUpdate")
        return decoded

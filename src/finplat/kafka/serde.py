"""PriceUpdate <-> Confluent-framed Avro, the schema registered under the topic's subject.

`PriceUpdateSerializer` encodes through Confluent's `AvroSerializer`, which registers our schema
under the topic's subject on first use (the registry's compatibility rule applies) and frames
each value with the id it got.

`PriceUpdateDeserializer` is the one decoder, for every consumer. It is lean, for the hot path:
it parses the Confluent framing itself (magic byte 0, 4-byte big-endian schema id, Avro binary),
fetches the writer schema from the registry once per id and caches it parsed by fastavro, and
resolves each value against our reader schema with fastavro's `schemaless_reader`, skipping the
per-message work of Confluent's `AvroDeserializer`. `timestamp-millis` is stripped from both
schemas so fastavro returns the epoch-millisecond ints our proto holds, instead of building a
datetime per field that `from_record` would turn back into an int.
"""

import io
import json
import struct
from collections.abc import Callable
from typing import Any, Protocol

import fastavro
import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from finance.market.v1 import market_pb2
from finplat.contract import avro
from finplat.contract.errors import ContractError
from finplat.core.connections import KafkaSettings
from finplat.kafka.errors import DecodeError, RegistryUnavailableError

# confluent-kafka's registry client speaks HTTP through httpx2 where it is installed (2.16 on)
# and httpx otherwise; neither's errors derive from OSError, and a missed one ended the
# services at the first registry outage, so both families are caught.
try:
    import httpx2

    _HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError)
except ImportError:  # an older confluent-kafka, on httpx alone
    _HTTP_ERRORS = (httpx.HTTPError,)
# The registry could not be reached or answered with an error: retry later, the data is fine.
_REGISTRY_FAILED: tuple[type[Exception], ...] = (SchemaRegistryError, OSError, *_HTTP_ERRORS)
# Fetching a writer schema by id (a 404 SchemaRegistryError is handled first, as bad data).
_FETCH_FAILED: tuple[type[Exception], ...] = (OSError, ValueError, *_HTTP_ERRORS)
_MAGIC = 0
_HEADER = struct.Struct(">bI")
# Registry answers that mean "this id does not exist": the message, not the registry, is bad.
_NOT_FOUND = 404


def registry_client(settings: KafkaSettings) -> SchemaRegistryClient:
    """A registry client for the serializers (Confluent API, so Apicurio's ccompat works too)."""
    config: dict[str, object] = {
        "url": settings.schema_registry_url,
        "timeout": settings.schema_registry_timeout_s,
    }
    # No 'basic.auth.credentials.source': this client rejects the key (2.16); it takes the
    # credentials from 'basic.auth.user.info' or, without it, from the URL.
    if settings.schema_registry_basic_auth_user_info is not None:
        user_info = settings.schema_registry_basic_auth_user_info.get_secret_value()
        config["basic.auth.user.info"] = user_info
    if settings.schema_registry_ssl_ca_location is not None:
        config["ssl.ca.location"] = str(settings.schema_registry_ssl_ca_location)
    return SchemaRegistryClient(config)


def _schema() -> dict[str, Any]:
    # Derived from the compiled descriptor: the same schema that schemas/ holds (checked fresh
    # in CI), without depending on the working directory.
    return avro.schema_of(market_pb2.PriceUpdate.DESCRIPTOR)


def _to_dict(update: market_pb2.PriceUpdate, _: SerializationContext) -> dict[str, Any]:
    return avro.to_record(update)


class PriceUpdateSerializer:
    """Encodes values with Confluent's AvroSerializer; registers the schema on first use."""

    def __init__(self, registry: SchemaRegistryClient, topic: str) -> None:
        self._inner = AvroSerializer(registry, json.dumps(_schema()), _to_dict)
        self._context = SerializationContext(topic, MessageField.VALUE)

    def __call__(self, update: market_pb2.PriceUpdate) -> bytes:
        """Confluent-framed Avro; ContractError for an update Avro cannot hold."""
        try:
            encoded: bytes = self._inner(update, self._context)
        except _REGISTRY_FAILED as exc:
            raise RegistryUnavailableError(f"schema registry: {exc}") from exc
        except SerializationError as exc:
            # The serializer wraps what to_dict raised; bad data stays a contract error.
            if isinstance(exc.__cause__, ContractError):
                raise exc.__cause__ from exc
            raise RegistryUnavailableError(f"cannot serialize: {exc}") from exc
        return encoded


class WriterSchemas(Protocol):
    """What the decoder needs of the registry client (`SchemaRegistryClient` has it)."""

    def get_schema(self, schema_id: int) -> Any:
        """The registered schema with this id; its `schema_str` is the Avro JSON."""
        ...


def _plain(schema: Any) -> Any:
    # Drops logicalType everywhere: the underlying long is read as is.
    if isinstance(schema, dict):
        return {key: _plain(value) for key, value in schema.items() if key != "logicalType"}
    if isinstance(schema, list):
        return [_plain(item) for item in schema]
    return schema


def _from_record_fast(record: dict[str, Any]) -> market_pb2.PriceUpdate:
    # Resolved against our reader schema, the record has exactly the proto's fields, ints for
    # timestamps and enum symbol names, which the generated constructor accepts directly.
    return market_pb2.PriceUpdate(**record)


def _from_record_generic(record: dict[str, Any]) -> market_pb2.PriceUpdate:
    return avro.from_record(record, market_pb2.PriceUpdate)


class PriceUpdateDeserializer:
    """bytes -> PriceUpdate, from any registered writer version, read with our schema.

    Raises `DecodeError` for a bad message (dead-letter it) and `RegistryUnavailableError`
    when the writer schema cannot be fetched (retry). `generic_conversion` builds the proto
    with `avro.from_record` instead of its constructor (slower; the bench compares them).
    """

    def __init__(self, registry: WriterSchemas, *, generic_conversion: bool = False) -> None:
        self._registry = registry
        self._reader = fastavro.parse_schema(_plain(_schema()))
        self._writers: dict[int, Any] = {}
        self._convert: Callable[[dict[str, Any]], market_pb2.PriceUpdate] = (
            _from_record_generic if generic_conversion else _from_record_fast
        )

    def _writer(self, schema_id: int) -> Any:
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        try:
            registered = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == _NOT_FOUND:
                raise DecodeError(f"unknown writer schema id {schema_id}") from exc
            raise RegistryUnavailableError(
                f"schema registry: cannot fetch schema {schema_id}: {exc}"
            ) from exc
        except _FETCH_FAILED as exc:
            raise RegistryUnavailableError(
                f"schema registry: cannot fetch schema {schema_id}: {exc}"
            ) from exc
        try:
            writer_json = _plain(json.loads(registered.schema_str))
            writer = fastavro.parse_schema(writer_json)
        except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
            raise DecodeError(f"writer schema {schema_id} is not usable Avro: {exc}") from exc
        self._writers[schema_id] = writer
        return writer

    def __call__(self, value: bytes | None) -> market_pb2.PriceUpdate:
        if value is None:
            raise DecodeError("message has no value (a tombstone)")
        if len(value) < _HEADER.size:
            raise DecodeError(f"{len(value)} bytes: too short for Confluent framing")
        magic, schema_id = _HEADER.unpack_from(value)
        if magic != _MAGIC:
            raise DecodeError(f"magic byte {magic}, expected {_MAGIC}: not Confluent Avro")
        writer = self._writer(schema_id)
        stream = io.BytesIO(value)
        stream.seek(_HEADER.size)
        try:
            record = fastavro.schemaless_reader(stream, writer, self._reader)
        except (ValueError, TypeError, KeyError, IndexError, EOFError, UnicodeDecodeError,
                StopIteration, fastavro.read.SchemaResolutionError) as exc:  # fmt: skip
            raise DecodeError(f"not a PriceUpdate: {type(exc).__name__}: {exc}") from exc
        if stream.tell() != len(value):
            raise DecodeError(f"{len(value) - stream.tell()} trailing bytes after the record")
        if not isinstance(record, dict):
            raise DecodeError(f"decoded to {type(record).__name__}, not a record")
        try:
            update = self._convert(record)
        except (ValueError, TypeError) as exc:
            raise DecodeError(f"record does not fit PriceUpdate: {exc}") from exc
        return update

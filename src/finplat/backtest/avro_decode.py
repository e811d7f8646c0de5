"""A lean PriceUpdate deserializer for the hot path of the consumer.

Confluent framing is parsed here (magic byte 0, 4-byte big-endian schema id, Avro binary); the
writer schema is fetched from the registry once per id and cached, parsed with fastavro, and
the value is resolved against our reader schema. `timestamp-millis` is stripped from both
schemas so fastavro returns the epoch-millisecond ints our proto holds, instead of building a
datetime per field that `from_record` would turn back into an int.
"""

import io
import json
import struct
from collections.abc import Callable
from typing import Any, Protocol

import fastavro
from confluent_kafka.schema_registry.error import SchemaRegistryError

from finance.market.v1 import market_pb2
from finplat.backtest.errors import RegistryUnavailableError
from finplat.contract import avro
from finplat.kafka.errors import DecodeError

_MAGIC = 0
_HEADER = struct.Struct(">bI")
# Registry answers that mean "this id does not exist": the message, not the registry, is bad.
_NOT_FOUND = 404


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


def reader_schema() -> dict[str, Any]:
    """Our PriceUpdate Avro schema, as derived from the proto."""
    return avro.schema_of(market_pb2.PriceUpdate.DESCRIPTOR)


def _from_record_fast(record: dict[str, Any]) -> market_pb2.PriceUpdate:
    # Resolved against our reader schema, the record has exactly the proto's fields, ints for
    # timestamps and enum symbol names, which the generated constructor accepts directly.
    return market_pb2.PriceUpdate(**record)


def _from_record_generic(record: dict[str, Any]) -> market_pb2.PriceUpdate:
    return avro.from_record(record, market_pb2.PriceUpdate)


class LeanPriceUpdateDeserializer:
    """bytes -> PriceUpdate; raises `DecodeError` for a bad message, retriable errors otherwise."""

    def __init__(self, registry: WriterSchemas, *, generic_conversion: bool = False) -> None:
        self._registry = registry
        self._reader = fastavro.parse_schema(_plain(reader_schema()))
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
            raise RegistryUnavailableError(f"cannot fetch schema {schema_id}: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise RegistryUnavailableError(f"cannot fetch schema {schema_id}: {exc}") from exc
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

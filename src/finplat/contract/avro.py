"""Avro, derived from the proto: the schema of a message and lossless record conversion.

The proto is the one definition. Each field maps by its proto type; `int64` fields named
`timestamp` or `*_timestamp` hold epoch milliseconds and get the Avro logical type
`timestamp-millis`. Every Avro field carries the proto3 default of its type, so a field added to
the proto is a BACKWARD-compatible change of the Avro schema.
"""

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from finplat.contract.descriptors import MessageDocs, message_docs
from finplat.contract.errors import ContractError

AvroSchema = dict[str, Any]
AvroRecord = dict[str, Any]

M = TypeVar("M", bound=Message)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

_SCALARS: dict[int, tuple[str, object]] = {
    FieldDescriptor.TYPE_STRING: ("string", ""),
    FieldDescriptor.TYPE_BYTES: ("bytes", ""),
    FieldDescriptor.TYPE_BOOL: ("boolean", False),
    FieldDescriptor.TYPE_INT32: ("int", 0),
    FieldDescriptor.TYPE_SINT32: ("int", 0),
    FieldDescriptor.TYPE_SFIXED32: ("int", 0),
    FieldDescriptor.TYPE_INT64: ("long", 0),
    FieldDescriptor.TYPE_SINT64: ("long", 0),
    FieldDescriptor.TYPE_SFIXED64: ("long", 0),
    FieldDescriptor.TYPE_DOUBLE: ("double", 0.0),
    FieldDescriptor.TYPE_FLOAT: ("float", 0.0),
}


def is_timestamp_millis(field: FieldDescriptor) -> bool:
    """Whether a field holds epoch milliseconds, by the naming rule of this module."""
    named = field.name == "timestamp" or field.name.endswith("_timestamp")
    return named and field.type == FieldDescriptor.TYPE_INT64


def _fields(message: Message) -> list[FieldDescriptor]:
    # The stubs type DESCRIPTOR as a union with the upb class that implements the same API.
    return list(cast(Descriptor, message.DESCRIPTOR).fields)


def _enum_type(field: FieldDescriptor) -> EnumDescriptor:
    if field.enum_type is None:
        raise ContractError(f"{field.full_name}: enum field without an enum type")
    return field.enum_type


def _check_supported(field: FieldDescriptor) -> None:
    if field.is_repeated:
        raise ContractError(f"{field.full_name}: repeated fields are not mapped to Avro")
    if field.type != FieldDescriptor.TYPE_ENUM and field.type not in _SCALARS:
        raise ContractError(f"{field.full_name}: only scalar and enum fields are mapped to Avro")


def _enum_schema(enum: EnumDescriptor, docs: MessageDocs, seen: set[str]) -> object:
    if enum.full_name in seen:
        return enum.full_name
    seen.add(enum.full_name)
    symbols = [value.name for value in enum.values]
    return {
        "type": "enum",
        "name": enum.name,
        "namespace": enum.file.package,
        "doc": docs.enums.get(enum.full_name, ""),
        "symbols": symbols,
        # A reader meeting a symbol added later falls back to the zero value, as proto3 does.
        "default": symbols[0],
    }


def _field_schema(field: FieldDescriptor, docs: MessageDocs, seen: set[str]) -> AvroSchema:
    _check_supported(field)
    avro_type: object
    default: object
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum = _enum_type(field)
        avro_type = _enum_schema(enum, docs, seen)
        default = enum.values[0].name
    elif is_timestamp_millis(field):
        avro_type, default = {"type": "long", "logicalType": "timestamp-millis"}, 0
    else:
        avro_type, default = _SCALARS[field.type]
    return {
        "name": field.name,
        "type": avro_type,
        "doc": docs.fields.get(field.name, ""),
        "default": default,
    }


def schema_of(descriptor: Descriptor) -> AvroSchema:
    """The Avro record schema of a proto message, docs taken from the proto comments."""
    docs = message_docs(descriptor.full_name)
    seen: set[str] = set()
    return {
        "type": "record",
        "name": descriptor.name,
        "namespace": descriptor.file.package,
        "doc": docs.message,
        "fields": [_field_schema(field, docs, seen) for field in descriptor.fields],
    }


def to_record(message: Message) -> AvroRecord:
    """The Avro record of a message, every field present (proto3 defaults included)."""
    record: AvroRecord = {}
    for field in _fields(message):
        _check_supported(field)
        value = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_ENUM:
            known = _enum_type(field).values_by_number.get(value)
            if known is None:
                raise ContractError(f"{field.full_name}: enum number {value} has no Avro symbol")
            value = known.name
        record[field.name] = value
    return record


def _millis(value: object, field: FieldDescriptor) -> int:
    # fastavro hands timestamp-millis back as an aware datetime; integer division keeps it exact.
    if isinstance(value, datetime):
        return (value - _EPOCH) // _MILLISECOND
    if isinstance(value, int):
        return value
    raise ContractError(f"{field.full_name}: expected epoch milliseconds, got {value!r}")


def from_record(record: AvroRecord, message_type: type[M]) -> M:
    """Rebuild a message from an Avro record; fields missing from the record keep defaults."""
    message = message_type()
    for field in _fields(message):
        if field.name not in record:
            continue
        value = record[field.name]
        if field.type == FieldDescriptor.TYPE_ENUM:
            known = _enum_type(field).values_by_name.get(value)
            # An unknown symbol maps to the zero value, like the Avro enum default.
            value = known.number if known is not None else 0
        elif is_timestamp_millis(field):
            value = _millis(value, field)
        setattr(message, field.name, value)
    return message

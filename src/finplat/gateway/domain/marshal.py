"""Messages to proto3 JSON with grpc-gateway v2's default marshaler options.

grpc-gateway's default marshaler (runtime/marshaler_registry.go) is JSONPb with
`protojson.MarshalOptions{EmitUnpopulated: true}` and `UnmarshalOptions{DiscardUnknown: true}`:

- names are JSON names (lowerCamelCase, `UseProtoNames: false`);
- every field is emitted: scalars at their zero value, empty lists and maps, and `null` for an
  unset singular message field (protojson writes an invalid message value as null). Python's
  `always_print_fields_with_no_presence` covers all but the nulls, added here; fields in a
  oneof, proto3 `optional` ones included, stay absent when unset, as in protojson;
- 64-bit integers are strings, enums are names, well-known types use their JSON forms.

Request bodies, the other way, are read by `request_body`.
"""

import functools
import json
from typing import Any

from google.protobuf import descriptor, json_format, message

FieldDescriptor = descriptor.FieldDescriptor

# Well-known types whose JSON form is a scalar or a free-form value: nothing to walk inside.
WELL_KNOWN_JSON = frozenset(
    {
        "google.protobuf.Any",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.ListValue",
        "google.protobuf.Struct",
        "google.protobuf.Timestamp",
        "google.protobuf.Value",
        *(
            f"google.protobuf.{name}Value"
            for name in ("Bool", "Bytes", "Double", "Float", "Int32", "Int64", "String")
        ),
        "google.protobuf.UInt32Value",
        "google.protobuf.UInt64Value",
    }
)


# What rendering a message can raise: an `Any` of an unknown type, a bad value in a map key...
MARSHAL_ERRORS = (json_format.SerializeToJsonError, TypeError, ValueError, KeyError)


def to_dict(msg: message.Message) -> Any:
    """The proto3 JSON value of `msg` (a dict, or a scalar for scalar well-known types)."""
    value = json_format.MessageToDict(msg, always_print_fields_with_no_presence=True)
    if isinstance(value, dict) and _has_nested_messages(msg.DESCRIPTOR):
        _add_nulls(msg, value)
    return value


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def field_value(msg: message.Message, field: FieldDescriptor) -> Any:
    """The JSON of one field, for `response_body`.

    An unset singular message field yields its message with every field at its zero value:
    grpc-gateway marshals the nil message pointer and protojson emits its unpopulated fields.
    """
    if field.message_type is not None and not field.is_repeated:
        return to_dict(getattr(msg, field.name))
    return to_dict(msg)[field.json_name]


@functools.cache
def _has_nested_messages(desc: descriptor.Descriptor) -> bool:
    """Whether a message can hold an unset message field somewhere, so nulls may be due."""
    for field in desc.fields:
        sub = field.message_type
        if sub is None:
            continue
        if sub.GetOptions().map_entry:
            value_type = sub.fields_by_name["value"].message_type
            if value_type is not None and value_type.full_name not in WELL_KNOWN_JSON:
                return True
        elif not field.is_repeated or sub.full_name not in WELL_KNOWN_JSON:
            return True
    return False


def _add_nulls(msg: message.Message, value: dict[str, Any]) -> None:
    for field in msg.DESCRIPTOR.fields:
        sub = field.message_type
        if sub is None:
            continue
        name = field.json_name
        if sub.GetOptions().map_entry:
            value_type = sub.fields_by_name["value"].message_type
            if value_type is not None and value_type.full_name not in WELL_KNOWN_JSON:
                for key, item in getattr(msg, field.name).items():
                    _add_nulls(item, value[name][_map_key(key)])
        elif field.is_repeated:
            if sub.full_name not in WELL_KNOWN_JSON:
                for item, item_value in zip(getattr(msg, field.name), value[name], strict=True):
                    _add_nulls(item, item_value)
        elif not msg.HasField(field.name):
            if field.containing_oneof is None:
                value[name] = None
        elif sub.full_name not in WELL_KNOWN_JSON:
            _add_nulls(getattr(msg, field.name), value[name])


def _map_key(key: object) -> str:
    # proto3 JSON map keys are strings; bools are spelled true/false.
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)

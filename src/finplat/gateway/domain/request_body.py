"""JSON request bodies into request messages, as grpc-gateway v2's default marshaler reads them.

The generated handlers decode the body with JSONPb's decoder (runtime/marshal_jsonpb.go): Go's
json.Decoder takes the first JSON value of the body and protojson unmarshals it. Hence:

- leading JSON whitespace is skipped and an empty body is io.EOF, which leaves the message as
  it is; anything after the first value is never read (after a string, number or literal, only
  whitespace may follow, as Go's scanner must see where the value ends);
- a byte-order mark is not whitespace, and invalid UTF-8 in the value is a syntax error;
- NaN and Infinity are not JSON literals (protojson takes them as strings: "NaN");
- a message is a JSON object, at every depth; null stands for an unset field inside an object,
  but not for the message itself;
- unknown fields are ignored (`DiscardUnknown: true`), names may be JSON or proto names.
"""

import functools
import json
from typing import Any, cast

from google.protobuf import descriptor, json_format, message

from finplat.gateway.domain.marshal import WELL_KNOWN_JSON

FieldDescriptor = descriptor.FieldDescriptor

_JSON_SPACE = " \t\r\n"
# What Go's decoder reports as io.EOF: the body holds no JSON value at all.
NO_VALUE = object()


class BodyError(ValueError):
    """A request body that is not the JSON of its message."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"invalid literal {name}")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_body(raw: bytes, msg: message.Message, body_field: FieldDescriptor | None) -> None:
    """Merge a JSON request body into `msg`: all of it (`body: "*"`) or one field."""
    value = first_json_value(raw)
    if value is NO_VALUE:
        return  # grpc-gateway ignores io.EOF: the message stays as it is
    shape: descriptor.Descriptor | None
    if body_field is None:
        # The stubs type DESCRIPTOR as a union of the Python and upb classes; same API.
        shape = cast(descriptor.Descriptor, msg.DESCRIPTOR)
    elif body_field.is_repeated:
        shape = None  # grpc-gateway decodes a list or map body with encoding/json, not protojson
    else:
        shape = body_field.message_type  # None for a scalar, also encoding/json's
    try:
        if shape is not None:
            _check_message_value(value, shape, "body")
        if body_field is not None:
            value = {body_field.json_name: value}
        json_format.ParseDict(value, msg, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, AttributeError) as exc:
        raise BodyError(f"invalid body: {exc}") from None
    except RecursionError:
        raise BodyError("invalid body: exceeded max depth") from None


def first_json_value(raw: bytes) -> Any:
    """The first JSON value of `raw` as Go's json.Decoder reads it, or NO_VALUE."""
    # Invalid bytes become lone surrogates, so they are found only if they are in the value.
    text = raw.decode("utf-8", "surrogateescape")
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    if start == len(text):
        return NO_VALUE
    try:
        value, end = _DECODER.raw_decode(text, start)
    except ValueError as exc:
        raise BodyError(f"invalid JSON body: {exc}") from None
    except RecursionError:
        # Go's decoder has a depth limit too (10000); Python's stack is reached sooner.
        raise BodyError("invalid JSON body: exceeded max depth") from None
    if text[start] not in "{[" and end < len(text) and text[end] not in _JSON_SPACE:
        raise BodyError(f"invalid JSON body: invalid character {text[end]!r} after top-level value")
    try:
        text[start:end].encode("utf-8")
    except UnicodeEncodeError:
        raise BodyError("invalid JSON body: invalid UTF-8") from None
    return value


def _check_message_value(value: Any, desc: descriptor.Descriptor, where: str) -> None:
    """protojson's shape rule: a message is a JSON object, unless a well-known type says not."""
    if desc.full_name in WELL_KNOWN_JSON:
        if value is None and desc.full_name != "google.protobuf.Value":
            raise BodyError(f"invalid body: {where}: {desc.full_name} cannot be null")
        return  # its JSON form (string, number, any value) is json_format's to check
    if not isinstance(value, dict):
        raise BodyError(
            f"invalid body: {where}: {desc.full_name} must be a JSON object, not {_kind(value)}"
        )
    for name, item in value.items():
        field = _field_by_json_or_proto_name(desc, name)
        sub = field.message_type if field is not None else None
        if field is None or sub is None or item is None:
            continue  # unknown, scalar or null (unset) fields: nothing to walk
        if sub.GetOptions().map_entry:
            value_type = sub.fields_by_name["value"].message_type
            if value_type is not None and isinstance(item, dict):
                for key, entry in item.items():
                    _check_message_value(entry, value_type, f"{where}.{name}[{key}]")
        elif field.is_repeated:
            if isinstance(item, list):
                for index, entry in enumerate(item):
                    _check_message_value(entry, sub, f"{where}.{name}[{index}]")
        else:
            _check_message_value(item, sub, f"{where}.{name}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "a number"


@functools.cache
def _fields_by_json_or_proto_name(desc: descriptor.Descriptor) -> dict[str, FieldDescriptor]:
    # JSON names win over proto names, as in protojson (ByJSONName, then ByTextName).
    fields = dict(desc.fields_by_name)
    fields.update({field.json_name: field for field in desc.fields})
    return fields


def _field_by_json_or_proto_name(desc: descriptor.Descriptor, name: str) -> FieldDescriptor | None:
    return _fields_by_json_or_proto_name(desc).get(name)

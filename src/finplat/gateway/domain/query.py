"""Path variables and query parameters into request messages, as grpc-gateway v2 does.

Mirrors runtime/query.go (`DefaultQueryParser`, `PopulateFieldFromPath`): a parameter names a
field by proto name or JSON name, nested with dots (`data.start_time`); an unknown name is
ignored (it may be meant for someone else); repeated fields take repeated parameters
(`symbols=A&symbols=B`); maps take `field[key]=value`; enums take a name or a number;
well-known types take their JSON scalar spelling.
"""

import functools
import re
from collections.abc import Iterable, Sequence
from typing import cast
from urllib.parse import unquote_to_bytes

from google.protobuf import descriptor, descriptor_pb2, message

from finplat.gateway.domain import scalars

FieldDescriptor = descriptor.FieldDescriptor
_MAP_KEY = re.compile(r"^(.*)\[(.*)\]$")


class FieldValueError(ValueError):
    """A parameter that cannot be stored in its field; the message names the field."""


def parse_query_string(raw: bytes) -> dict[str, list[str]]:
    """Decode `a=1&b=2&b=3` like Go's url.ParseQuery: "+" is a space, bad escapes are errors."""
    params: dict[str, list[str]] = {}
    for pair in raw.split(b"&"):
        if not pair:
            continue
        if b";" in pair:
            raise FieldValueError("invalid semicolon separator in query")
        key, _, value = pair.partition(b"=")
        params.setdefault(_unquote(key), []).append(_unquote(value))
    return params


def _unquote(raw: bytes) -> str:
    raw = raw.replace(b"+", b" ")
    if re.search(rb"%(?![0-9A-Fa-f]{2})", raw):
        raise FieldValueError(f"invalid URL escape in {raw.decode('latin-1')!r}")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise FieldValueError("query parameter is not valid UTF-8") from None


def populate_query(
    msg: message.Message, params: dict[str, list[str]], bound: Iterable[tuple[str, ...]]
) -> None:
    """Set every parameter not under a field already bound by the path or the body.

    An empty value is parsed like any other, as runtime.PopulateQueryParameters does: it sets a
    string or bytes field (and so a oneof member, an optional field, a wrapper) to empty, adds
    an empty item to a repeated one, and fails for a number, a bool, an enum or a timestamp.
    """
    bound_paths = list(bound)
    # The stubs type DESCRIPTOR as a union of the Python and upb classes; same API.
    desc = cast(descriptor.Descriptor, msg.DESCRIPTOR)
    for key, given in params.items():
        name, values = key, given
        match = _MAP_KEY.match(key)
        if match:
            name, values = match.group(1), [match.group(2), *given]
        path = _in_proto_names(desc, name.split("."))
        if any(tuple(path[: len(prefix)]) == prefix for prefix in bound_paths):
            continue
        populate_field(msg, path, values)


def _in_proto_names(desc: descriptor.Descriptor, path: list[str]) -> list[str]:
    """grpc-gateway's normalizeFieldPath: JSON names become proto names, so that `pageSize` is
    filtered out when `page_size` is bound; a path that names no field is left as given."""
    names: list[str] = []
    for depth, name in enumerate(path):
        field = _field_by_name(desc, name)
        if field is None:
            return path
        names.append(field.name)
        if depth == len(path) - 1:
            break
        if field.message_type is None or field.is_repeated:
            return path
        desc = field.message_type
    return names


def populate_field(msg: message.Message, path: Sequence[str], values: Sequence[str]) -> None:
    """Set the field at `path` (proto or JSON names) from its text `values`."""
    target = msg
    field: FieldDescriptor | None = None
    for depth, name in enumerate(path):
        # The stubs type DESCRIPTOR as a union of the Python and upb classes; same API.
        field = _field_by_name(cast(descriptor.Descriptor, target.DESCRIPTOR), name)
        if field is None:
            return  # not a field: an extra parameter, ignored as grpc-gateway does
        if depth == len(path) - 1:
            break
        if field.message_type is None or field.is_repeated:
            raise FieldValueError(f"invalid path: {name!r} is not a message")
        target = getattr(target, field.name)
    assert field is not None
    oneof = field.containing_oneof
    if oneof is not None and not _is_synthetic(field):
        already = target.WhichOneof(oneof.name)
        if already is not None:
            raise FieldValueError(f"field already set for oneof {oneof.name!r}")
    _store(target, field, values, ".".join(path))


def _store(
    target: message.Message, field: FieldDescriptor, values: Sequence[str], name: str
) -> None:
    container = getattr(target, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        if len(values) != 2:
            raise FieldValueError(f"more than one value provided for key {values[0]!r} in map")
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        key = _parse(key_field, values[0], f"map key {name!r}")
        value = _parse(value_field, values[1], f"map value {name!r}")
        if isinstance(value, message.Message):
            _assign(container[key], value)
        else:
            container[key] = value
        return
    if field.is_repeated:
        for text in values:
            item = _parse(field, text, f"list {name!r}")
            if isinstance(item, message.Message):
                _assign(container.add(), item)
            else:
                container.append(item)
        return
    if len(values) > 1:
        raise FieldValueError(f"too many values for field {name!r}: {', '.join(values)}")
    value = _parse(field, values[0], f"field {name!r}")
    if isinstance(value, message.Message):
        _assign(container, value)
    else:
        setattr(target, field.name, value)


def _assign(target: message.Message, value: message.Message) -> None:
    # Well-known values are built from the default pool's classes; a request from another
    # descriptor pool has its own classes for the same types, which CopyFrom refuses.
    if type(target) is type(value):
        target.CopyFrom(value)
    else:
        target.Clear()
        target.MergeFromString(value.SerializeToString())


def _parse(field: FieldDescriptor, text: str, label: str) -> object:
    try:
        if field.type == FieldDescriptor.TYPE_ENUM:
            return _parse_enum(field, text)
        if field.message_type is not None:
            return scalars.parse_well_known(field.message_type.full_name, text)
        return scalars.SCALAR_PARSERS[field.type](text)
    except ValueError as exc:
        raise FieldValueError(f"parsing {label}: {exc}") from None


def _parse_enum(field: FieldDescriptor, text: str) -> int:
    enum = field.enum_type
    assert enum is not None
    by_name = enum.values_by_name.get(text)
    if by_name is not None:
        return int(by_name.number)
    try:
        number = scalars.parse_int(text, 32)
    except ValueError:
        number = None
    if number is None or number not in enum.values_by_number:
        raise ValueError(f"{text!r} is not a valid value of {enum.full_name}")
    return number


@functools.cache
def _fields_by_any_name(desc: descriptor.Descriptor) -> dict[str, FieldDescriptor]:
    # Proto names win over JSON names, as in grpc-gateway (ByName, then ByJSONName).
    fields = {field.json_name: field for field in desc.fields}
    fields.update(desc.fields_by_name)
    return fields


def _field_by_name(desc: descriptor.Descriptor, name: str) -> FieldDescriptor | None:
    return _fields_by_any_name(desc).get(name)


@functools.cache
def _is_synthetic(field: FieldDescriptor) -> bool:
    # A proto3 `optional` field sits in a synthetic oneof, which is presence, not a choice.
    proto = descriptor_pb2.DescriptorProto()
    assert field.containing_type is not None
    field.containing_type.CopyToProto(proto)
    return any(f.proto3_optional for f in proto.field if f.name == field.name)

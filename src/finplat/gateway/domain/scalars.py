"""Text to proto values, with the rules of grpc-gateway's query parser (runtime/query.go).

grpc-gateway parses path and query parameters with Go's strconv and time packages, so these
accept exactly what Go accepts: `strconv.ParseBool` spellings, base-10 integers with an optional
sign and no underscores, range-checked widths, `time.ParseDuration` durations ("1.5s", "1h30m",
"300ms") and RFC 3339 timestamps. Python's own `int()`/`float()` are looser (whitespace,
underscores) and would let through values the Go gateway answers with 400.
"""

import base64
import binascii
import functools
import math
import re
from collections.abc import Callable
from decimal import Decimal

from google.protobuf import (
    descriptor,
    duration_pb2,
    field_mask_pb2,
    json_format,
    message,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

_Field = descriptor.FieldDescriptor

_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}
_INT = re.compile(r"[+-]?[0-9]+")
_UINT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL_FLOATS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}
_FLOAT32_MAX = 3.4028234663852886e38
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_NANOS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,  # Go accepts the micro sign and the Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_DURATION_NANOS = 2**63 - 1


def parse_bool(text: str) -> bool:
    try:
        return _BOOLS[text]
    except KeyError:
        raise ValueError(f"invalid boolean {text!r}") from None


def parse_int(text: str, bits: int) -> int:
    if not _INT.fullmatch(text):
        raise ValueError(f"invalid integer {text!r}")
    value = int(text)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ValueError(f"integer {text!r} out of range for int{bits}")
    return value


def parse_uint(text: str, bits: int) -> int:
    if not _UINT.fullmatch(text):
        raise ValueError(f"invalid unsigned integer {text!r}")
    value = int(text)
    if value >= 2**bits:
        raise ValueError(f"integer {text!r} out of range for uint{bits}")
    return value


def parse_float(text: str, bits: int = 64) -> float:
    special = _SPECIAL_FLOATS.get(text.lstrip("+-").lower())
    if special is not None:
        return -special if text.startswith("-") else special
    if not _FLOAT.fullmatch(text):
        raise ValueError(f"invalid number {text!r}")
    value = float(text)
    # Go's ParseFloat reports overflow (ErrRange) where Python silently returns infinity.
    limit = _FLOAT32_MAX if bits == 32 else math.inf
    if math.isinf(value) or abs(value) > limit:
        raise ValueError(f"number {text!r} out of range for float{bits}")
    return value


def parse_bytes(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not, as grpc-gateway's runtime.Bytes accepts."""
    padded = text + "=" * (-len(text) % 4)
    alphabet = b"-_" if ("-" in text or "_" in text) else b"+/"
    try:
        return base64.b64decode(padded, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"invalid base64 {text!r}") from None


def parse_duration(text: str) -> tuple[int, int]:
    """Go's `time.ParseDuration`, returned as protobuf Duration (seconds, nanos)."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0, 0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total = Decimal(0)
    position = 0
    while position < len(body):
        part = _DURATION_PART.match(body, position)
        if part is None or part.group(1) in ("", "."):
            raise ValueError(f"invalid duration {text!r}")
        total += Decimal(part.group(1)) * _NANOS_PER_UNIT[part.group(2)]
        position = part.end()
    nanos_total = int(total)  # Go truncates fractions of a nanosecond
    if nanos_total > _MAX_DURATION_NANOS:
        raise ValueError(f"duration {text!r} out of range")
    seconds, nanos = divmod(nanos_total, 1_000_000_000)
    return sign * seconds, sign * nanos


def parse_timestamp(text: str) -> timestamp_pb2.Timestamp:
    """RFC 3339 with optional fractional seconds (Go's `time.RFC3339Nano` layout)."""
    timestamp = timestamp_pb2.Timestamp()
    try:
        timestamp.FromJsonString(text)
    except ValueError as exc:
        raise ValueError(f"invalid RFC 3339 timestamp {text!r}: {exc}") from None
    return timestamp


def parse_well_known(name: str, text: str) -> message.Message:
    """A well-known type from its JSON scalar spelling, as grpc-gateway's parseMessage."""
    if name == "google.protobuf.Timestamp":
        return parse_timestamp(text)
    if name == "google.protobuf.Duration":
        seconds, nanos = parse_duration(text)
        return duration_pb2.Duration(seconds=seconds, nanos=nanos)
    wrapper = WRAPPERS.get(name)
    if wrapper is not None:
        cls, parse = wrapper
        return cls(value=parse(text))
    if name == "google.protobuf.FieldMask":
        return field_mask_pb2.FieldMask(paths=text.split(","))
    if name in ("google.protobuf.Value", "google.protobuf.Struct"):
        target: message.Message = (
            struct_pb2.Value() if name.endswith("Value") else struct_pb2.Struct()
        )
        try:
            json_format.Parse(text, target)
        except json_format.ParseError as exc:
            raise ValueError(str(exc)) from None
        return target
    raise ValueError(f"unsupported message type: {name!r}")


SCALAR_PARSERS: dict[int, Callable[[str], object]] = {
    _Field.TYPE_BOOL: parse_bool,
    _Field.TYPE_STRING: str,
    _Field.TYPE_BYTES: parse_bytes,
    _Field.TYPE_DOUBLE: parse_float,
    _Field.TYPE_FLOAT: functools.partial(parse_float, bits=32),
    **dict.fromkeys(
        (_Field.TYPE_INT32, _Field.TYPE_SINT32, _Field.TYPE_SFIXED32),
        functools.partial(parse_int, bits=32),
    ),
    **dict.fromkeys(
        (_Field.TYPE_INT64, _Field.TYPE_SINT64, _Field.TYPE_SFIXED64),
        functools.partial(parse_int, bits=64),
    ),
    **dict.fromkeys(
        (_Field.TYPE_UINT32, _Field.TYPE_FIXED32),
        functools.partial(parse_uint, bits=32),
    ),
    **dict.fromkeys(
        (_Field.TYPE_UINT64, _Field.TYPE_FIXED64),
        functools.partial(parse_uint, bits=64),
    ),
}

WRAPPERS: dict[str, tuple[type[message.Message], Callable[[str], object]]] = {
    "google.protobuf.DoubleValue": (wrappers_pb2.DoubleValue, parse_float),
    "google.protobuf.FloatValue": (
        wrappers_pb2.FloatValue,
        functools.partial(parse_float, bits=32),
    ),
    "google.protobuf.Int64Value": (
        wrappers_pb2.Int64Value,
        functools.partial(parse_int, bits=64),
    ),
    "google.protobuf.Int32Value": (
        wrappers_pb2.Int32Value,
        functools.partial(parse_int, bits=32),
    ),
    "google.protobuf.UInt64Value": (
        wrappers_pb2.UInt64Value,
        functools.partial(parse_uint, bits=64),
    ),
    "google.protobuf.UInt32Value": (
        wrappers_pb2.UInt32Value,
        functools.partial(parse_uint, bits=32),
    ),
    "google.protobuf.BoolValue": (wrappers_pb2.BoolValue, parse_bool),
    "google.protobuf.StringValue": (wrappers_pb2.StringValue, str),
    "google.protobuf.BytesValue": (wrappers_pb2.BytesValue, parse_bytes),
}

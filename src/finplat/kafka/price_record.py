"""Confluent-framed Avro -> `PriceRecord`, a flat tuple of PriceUpdate's fields, for the hot path.

The statistics consumer reads every update once and keeps nothing of it but a few values: a
protobuf message per update was most of its cost (the lean decoder's fastavro dict, then the
message, then a new Python string each time a string field is read). `PriceRecordDeserializer`
reads the Avro binary straight into a `PriceRecord`, with one Python function per writer
schema, compiled, like the encoder in `finplat.kafka.serde`, from a reading plan: for each field
the writer wrote, in its order, read a string, a long (an int too, which Avro promotes to long)
or an enum index into the reader's field of that name, or skip it when our schema has no such
field; then the reader's defaults for the fields the writer lacks. Enum indexes map to proto
numbers through the writer's symbols, resolved against ours (an unknown symbol becomes our
enum's default), and the defaults are converted by the proto's own constructor, so both come out
as the lean decoder's do.

A writer schema of another shape (another Avro type, a union, a named type referred to by name,
a mismatched record or enum name, an alias, a field without a default) gets no plan: its values
go through `PriceUpdateDeserializer`, fastavro's resolution, and are converted. Correctness never
depends on the plan covering everything; the unit tests compare the two decoders on random
updates, random writer schemas and damaged bytes.

The same framing checks and errors as `PriceUpdateDeserializer`, whose writer-schema cache it
shares (one registry call per id): `DecodeError` for a bad message, `RegistryUnavailableError`
when the registry cannot answer. Bytes are read as fastavro reads them, including its leniency
when skipping a field our schema lacks (its length is not checked, its UTF-8 not decoded); the
one difference is on malformed varints, which Avro limits to 10 bytes: fastavro wraps longer ones
around 64 bits, this decoder refuses them.

Per update, on 100,000 realistic ones in memory (2 cores, CPU time, best of 5, the registry a
fake), each in the same run: the lean decoder 9-12 us, this one 3.6-4.1 us; the consumer's whole
in-memory batch work (decode, checks, de-dup, statistics) went from 18-20 us to 8-10 us.
bench/consumer_bench.py prints both decoders and the consumer.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from finance.market.v1 import market_pb2
from finplat.kafka.errors import DecodeError
from finplat.kafka.serde import (
    FRAMING_BYTES,
    PriceUpdateDeserializer,
    WriterSchemas,
    framed,
    reader_schema,
    trailing,
    unreadable,
)


# A tuple: each field is read through a C descriptor, and the reader builds one with a single C
# call (`tuple.__new__`), where a slotted class would run a Python __init__ per update.
class PriceRecord(NamedTuple):
    """A decoded PriceUpdate's fields, named as in the proto; `kind` is the enum's number."""

    symbol: str
    price: str
    timestamp: int
    volume: str
    service: str
    kind: int
    event_id: str
    exchange: str
    receive_timestamp: int


Read = Callable[[bytes], PriceRecord]
"""A whole framed value -> its record; DecodeError when the Avro body is bad."""

_MASK64 = (1 << 64) - 1
_LONG_TYPES = frozenset({"long", "int"})


def _record_of(update: market_pb2.PriceUpdate) -> PriceRecord:
    return PriceRecord(
        update.symbol, update.price, update.timestamp, update.volume, update.service,
        update.kind, update.event_id, update.exchange, update.receive_timestamp,
    )  # fmt: skip


def _varint(value: bytes, position: int, first: int) -> tuple[int, int]:
    """The varint whose first byte, `first`, had its top bit set and whose next byte is at
    `position`: its value cut to 64 bits, as fastavro's reader keeps it, and the position after
    it. IndexError when `value` ends first."""
    number = first & 0x7F
    shift = 7
    while True:
        byte = value[position]
        position += 1
        number |= (byte & 0x7F) << shift
        if byte < 0x80:
            return number & _MASK64, position
        shift += 7
        if shift > 63:
            raise DecodeError("not a PriceUpdate: a varint longer than 10 bytes")


@dataclass(frozen=True)
class _Step:
    """What to do with one field the writer wrote."""

    kind: Literal["string", "long", "enum", "skip string", "skip varint"]
    slot: int
    """The reader field it fills (its index in `PriceRecord`); -1 for a skip."""
    numbers: tuple[int, ...] = ()
    """For an enum, the proto number of each of the writer's symbols, by index."""


def _type_name(avro_type: Any) -> str | None:
    if isinstance(avro_type, str):
        return avro_type
    if isinstance(avro_type, dict) and isinstance(avro_type.get("type"), str):
        return str(avro_type["type"])
    return None


def _short_name(named: Mapping[str, Any]) -> str:
    return str(named.get("name", "")).rsplit(".", 1)[-1]


def _proto_value(name: str, value: Any) -> Any:
    """`value` for field `name` as the lean decoder's proto constructor turns it; ValueError or
    TypeError where it refuses it (the lean decoder then refuses every message)."""
    return getattr(market_pb2.PriceUpdate(**{name: value}), name)


def _enum_numbers(
    name: str, writer: Mapping[str, Any], reader: Mapping[str, Any]
) -> tuple[int, ...]:
    # fastavro: a writer symbol our enum lacks reads as our enum's default, and fails without one.
    symbols = reader["symbols"]
    default = reader.get("default")
    numbers = []
    for symbol in writer["symbols"]:
        if symbol not in symbols and not default:
            raise ValueError(f"writer symbol {symbol} has no reader symbol nor default")
        numbers.append(_proto_value(name, symbol if symbol in symbols else default))
    return tuple(numbers)


def _read_step(writer_type: Any, reader_field: Mapping[str, Any], slot: int) -> _Step | None:
    written, wanted = _type_name(writer_type), _type_name(reader_field["type"])
    if written == wanted == "string":
        return _Step("string", slot)
    if written in _LONG_TYPES and wanted == "long":
        return _Step("long", slot)
    if written == wanted == "enum":
        reader_enum = reader_field["type"]
        if _short_name(writer_type) != _short_name(reader_enum) or "aliases" in reader_enum:
            return None
        try:
            numbers = _enum_numbers(reader_field["name"], writer_type, reader_enum)
        except (ValueError, TypeError):
            return None
        return _Step("enum", slot, numbers)
    return None


def _skip_step(writer_type: Any) -> _Step | None:
    written = _type_name(writer_type)
    if written == "string":
        return _Step("skip string", -1)
    if written in _LONG_TYPES or written == "enum":
        return _Step("skip varint", -1)
    return None


def _plan(
    writer: Mapping[str, Any], reader: Mapping[str, Any]
) -> tuple[list[_Step], dict[int, Any]] | None:
    """The steps for the writer's fields and the value of each reader field the writer lacks,
    by slot, or None for a shape the plan does not read."""
    fields = writer.get("fields")
    if (
        writer.get("type") != "record"
        or not isinstance(fields, list)
        or _short_name(writer) != _short_name(reader)
        or "aliases" in reader
    ):
        return None
    slots = {field["name"]: slot for slot, field in enumerate(reader["fields"])}
    if list(slots) != list(PriceRecord._fields) or any("aliases" in f for f in reader["fields"]):
        return None
    steps: list[_Step] = []
    filled: set[int] = set()
    for field in fields:
        slot = slots.get(field.get("name"))
        if slot is None:
            step = _skip_step(field.get("type"))
        elif slot in filled:  # the same name twice: left to fastavro
            return None
        else:
            step = _read_step(field.get("type"), reader["fields"][slot], slot)
            filled.add(slot)
        if step is None:
            return None
        steps.append(step)
    defaults = _defaults(reader["fields"], filled)
    return None if defaults is None else (steps, defaults)


def _defaults(fields: Sequence[Mapping[str, Any]], filled: set[int]) -> dict[int, Any] | None:
    """The value of each reader field the writer lacks, by slot; None where one has none."""
    defaults = {}
    for slot, field in enumerate(fields):
        if slot not in filled:
            if "default" not in field:
                return None
            try:
                defaults[slot] = _proto_value(field["name"], field["default"])
            except (ValueError, TypeError):
                return None
    return defaults


# Each step's code: `n` is the varint just read (unsigned), `p` the position in the value.
_VARINT = """
    n = value[p]
    p += 1
    if n >= 0x80:
        n, p = varint(value, p, n)"""
_CODE = {
    "string": _VARINT
    + """
    if n & 1:
        raise negative_length()
    e = p + (n >> 1)
    f{slot} = value[p:e].decode()
    p = e""",
    "long": _VARINT
    + """
    f{slot} = (n >> 1) ^ -(n & 1)""",
    "enum": _VARINT
    + """
    f{slot} = numbers_{index}[(n >> 1) ^ -(n & 1)]""",
    # fastavro skips a string by reading its length's worth of what is left, however short.
    "skip string": _VARINT
    + """
    p = size if n & 1 else min(p + (n >> 1), size)""",
    "skip varint": _VARINT,
}


def _source(steps: Sequence[_Step], defaults: Mapping[int, Any]) -> str:
    """The reader's code: each step inline, then the record built in one call.

    Only indexes and kinds reach the code; symbols and defaults are bound in its globals. A
    string that runs past the end leaves `p` past it: the last check catches that, and any
    read beyond the end raises IndexError.
    """
    lines = ["def read(value):", f"    p = {FRAMING_BYTES}", "    size = len(value)", "    try:"]
    for index, step in enumerate(steps):
        code = _CODE[step.kind].format(slot=step.slot, index=index)
        lines += [f"    {line}" for line in code.splitlines() if line]
    if not steps:  # a writer without fields: the record is all defaults
        lines.append("        pass")
    lines += [
        "    except IndexError as exc:",
        "        raise ends_early() from exc",
        "    except UnicodeDecodeError as exc:",
        "        raise unreadable(exc) from exc",
        "    if p != size:",
        "        raise wrong_end(p, size)",
    ]
    fields = [
        f"default_{slot}" if slot in defaults else f"f{slot}"
        for slot in range(len(PriceRecord._fields))
    ]
    lines.append(f"    return new(PriceRecord, ({', '.join(fields)},))")
    return "\n".join(lines) + "\n"


def _negative_length() -> DecodeError:
    return DecodeError("not a PriceUpdate: a string of negative length")


def _ends_early() -> DecodeError:
    return DecodeError("not a PriceUpdate: the value ends inside the record")


def _wrong_end(position: int, size: int) -> DecodeError:
    if position > size:
        return DecodeError(f"not a PriceUpdate: a string runs {position - size} bytes past the end")
    return trailing(size - position)


def compile_reader(writer: Mapping[str, Any], reader: Mapping[str, Any]) -> Read | None:
    """The reader of values written with `writer` into our `reader` schema's fields (both
    parsed as `reader_schema` parses), or None when the writer's shape is not one the plan
    reads."""
    plan = _plan(writer, reader)
    if plan is None:
        return None
    steps, defaults = plan
    scope: dict[str, Any] = {
        "varint": _varint,
        "new": tuple.__new__,
        "PriceRecord": PriceRecord,
        "negative_length": _negative_length,
        "ends_early": _ends_early,
        "unreadable": unreadable,
        "wrong_end": _wrong_end,
    }
    for index, step in enumerate(steps):
        scope[f"numbers_{index}"] = step.numbers
    for slot, default in defaults.items():
        scope[f"default_{slot}"] = default
    code = compile(_source(steps, defaults), "<Avro reader of PriceRecord>", "exec")
    exec(code, scope)
    read: Read = scope["read"]
    return read


class PriceRecordDeserializer:
    """bytes -> PriceRecord, from any registered writer version, read with our schema.

    Raises `DecodeError` for a bad message (dead-letter it) and `RegistryUnavailableError`
    when the writer schema cannot be fetched (retry), as `PriceUpdateDeserializer` does.
    """

    def __init__(self, registry: WriterSchemas) -> None:
        self._fallback = PriceUpdateDeserializer(registry)
        self._reader = reader_schema()
        # By the value's first bytes, magic byte and schema id: one slice finds the reader.
        self._reads: dict[bytes, Read] = {}

    def __call__(self, value: bytes | None) -> PriceRecord:
        if value is not None:
            read = self._reads.get(value[:FRAMING_BYTES])
            if read is not None:
                return read(value)
        return self._first_of_its_schema(value)

    def _first_of_its_schema(self, value: bytes | None) -> PriceRecord:
        value, schema_id = framed(value)
        writer = self._fallback.writer_schema(schema_id)
        read = compile_reader(writer, self._reader) or self._via_fastavro
        self._reads[value[:FRAMING_BYTES]] = read
        return read(value)

    def _via_fastavro(self, value: bytes) -> PriceRecord:
        return _record_of(self._fallback(value))

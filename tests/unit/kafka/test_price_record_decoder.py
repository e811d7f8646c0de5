"""The flat PriceRecord decoder beside the lean PriceUpdate decoder: same fields, same errors.

`PriceUpdateDeserializer` is the reference (fastavro's schema resolution, then the proto): on
random updates, random writer schemas and damaged bytes, `PriceRecordDeserializer` must give
what it gives, field by field, or a `DecodeError` where it raises one. The registries are
in-memory fakes: these tests cover decoding, not the Schema Registry.
"""

import io
import re
import struct
from typing import Any

import fastavro
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from finance.market.v1 import market_pb2
from finplat.kafka.errors import DecodeError, RegistryUnavailableError
from finplat.kafka.price_record import PriceRecord, PriceRecordDeserializer, compile_reader
from finplat.kafka.serde import PriceUpdateDeserializer, PriceUpdateSerializer, reader_schema
from tests.unit.backtest.service_support import (
    SCHEMA_ID,
    FakeRegistry,
    encode,
    price_update_schema,
    update,
)
from tests.unit.kafka.test_price_update_encoder import (
    REALISTIC,
    UPDATES,
    FakeRegisteringRegistry,
)

PROPERTY = settings(max_examples=300, deadline=None)
KNOWN_ID = b"\x00" + struct.pack(">I", SCHEMA_ID)
VALID = encode(REALISTIC)
Outcome = tuple[Any, ...] | str
# Where an 11-byte varint could start: fastavro wraps one around 64 bits, the flat decoder refuses
# it (Avro's limit is 10 bytes; test_a_varint_longer_than_avro_allows_is_rejected).
OVERLONG = re.compile(rb"[\x80-\xff]{10}")


def _fields(decoded: market_pb2.PriceUpdate | PriceRecord) -> tuple[Any, ...]:
    return tuple(getattr(decoded, name) for name in PriceRecord._fields)


def _outcomes(registry: Any, value: bytes | None) -> tuple[Outcome, Outcome]:
    """What each decoder makes of `value`: its fields, or "DecodeError" (anything else fails)."""
    outcomes: list[Outcome] = []
    for decode in (PriceUpdateDeserializer(registry), PriceRecordDeserializer(registry)):
        try:
            outcomes.append(_fields(decode(value)))
        except DecodeError:
            outcomes.append("DecodeError")
    lean, flat = outcomes
    return lean, flat


def test_the_record_has_the_protos_fields_in_order() -> None:
    names = tuple(field.name for field in market_pb2.PriceUpdate.DESCRIPTOR.fields)

    assert PriceRecord._fields == names


def test_round_trip_with_the_schema_fetched_once() -> None:
    registry = FakeRegistry()
    decode = PriceRecordDeserializer(registry)

    decoded = [decode(VALID) for _ in range(3)]

    assert decoded == [PriceRecord(*_fields(REALISTIC))] * 3
    assert registry.calls == 1


@PROPERTY
@given(UPDATES)
@example(REALISTIC)
@example(market_pb2.PriceUpdate(symbol="\U0001d11e" * 16, price="€" * 100, event_id="x" * 10_000))
@example(market_pb2.PriceUpdate(timestamp=-(2**63), receive_timestamp=2**63 - 1))
def test_any_update_decodes_as_the_lean_decoder_decodes_it(
    update: market_pb2.PriceUpdate,
) -> None:
    registry = FakeRegisteringRegistry()
    value = PriceUpdateSerializer(registry, "price-updates")(update)

    lean, flat = _outcomes(registry, value)

    assert flat == lean == _fields(update)


# -- writer schemas: any version a producer may have registered ---------------------------------

_PROTO_SYMBOLS = list(market_pb2.EventKind.keys())
_TEXT = st.text(max_size=20)
_LONG = st.integers(-(2**63), 2**63 - 1)
_INT = st.integers(-(2**31), 2**31 - 1)
# Field types the flat decoder reads itself, with values for them...
_SUPPORTED = ("string", "long", "int", "enum")
# ...and types it leaves to fastavro.
_OTHER = ("boolean", "double", "bytes", "nullable string")


def _value_of(avro_type: str, data: st.DataObject, symbols: list[str]) -> Any:
    strategies: dict[str, st.SearchStrategy[Any]] = {
        "string": _TEXT,
        "long": _LONG,
        "int": _INT,
        "enum": st.sampled_from(symbols),
        "boolean": st.booleans(),
        "double": st.floats(allow_nan=False),
        "bytes": st.binary(max_size=10),
        "nullable string": st.none() | _TEXT,
    }
    return data.draw(strategies[avro_type])


def _schema_of(avro_type: str, name: str, symbols: list[str]) -> Any:
    if avro_type == "enum":
        return {"type": "enum", "name": name, "symbols": symbols}
    if avro_type == "nullable string":
        return ["null", "string"]
    return avro_type


@st.composite
def writers(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """A writer schema (our fields kept or dropped, extra ones, any order), a record written
    with it, and whether every field's type is one the flat decoder reads itself."""
    data = draw(st.data())
    fields: list[dict[str, Any]] = []
    record: dict[str, Any] = {}
    supported = True
    for field in price_update_schema()["fields"]:
        if not draw(st.booleans()):
            continue  # a version without this field: the reader's default
        name = field["name"]
        if name == "kind":
            # Our symbols, some dropped, in any order, with some unknown to the reader.
            ours = draw(st.lists(st.sampled_from(_PROTO_SYMBOLS), unique=True))
            new = draw(
                st.lists(st.sampled_from(["EVENT_KIND_SWAP", "EVENT_KIND_QUOTE"]), unique=True)
            )
            symbols = draw(st.permutations(ours + new))
            if not symbols:
                continue
            avro_type: Any = {"type": "enum", "name": "EventKind", "symbols": symbols}
            record[name] = data.draw(st.sampled_from(symbols))
        elif field["type"] == "string":
            avro_type, record[name] = "string", data.draw(_TEXT)
        else:  # a timestamp, an int in an older version (Avro promotes it)
            avro_type = draw(st.sampled_from(["long", "int"]))
            record[name] = _value_of(avro_type, data, [])
        fields.append({"name": name, "type": avro_type})
    for index in range(draw(st.integers(0, 3))):
        extra = draw(st.sampled_from(_SUPPORTED + _OTHER))
        supported = supported and extra in _SUPPORTED
        name, symbols = f"extra_{index}", ["A", "B", "C"]
        fields.append({"name": name, "type": _schema_of(extra, f"Extra{index}", symbols)})
        record[name] = _value_of(extra, data, symbols)
    ordered = draw(st.permutations(fields))
    schema = {"type": "record", "name": "PriceUpdate", "namespace": "old", "fields": ordered}
    return schema, record, supported


@PROPERTY
@given(writers())
def test_any_writer_schema_decodes_as_the_lean_decoder_decodes_it(
    writer: tuple[dict[str, Any], dict[str, Any], bool],
) -> None:
    schema, record, supported = writer
    body = io.BytesIO()
    parsed = fastavro.parse_schema(schema)
    fastavro.schemaless_writer(body, parsed, record)
    registry = FakeRegistry({SCHEMA_ID: schema})

    lean, flat = _outcomes(registry, KNOWN_ID + body.getvalue())

    assert flat == lean != "DecodeError"
    # The shapes it supports are read by its own plan, the others left to fastavro.
    assert isinstance(parsed, dict)
    planned = compile_reader(parsed, reader_schema()) is not None
    assert planned == supported


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "record", "name": "Other", "fields": []},
        {
            "type": "record",
            "name": "PriceUpdate",
            "fields": [
                {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["X"]}}
            ],
        },
        {"type": "record", "name": "PriceUpdate", "fields": [{"name": "price", "type": "long"}]},
    ],
)
def test_a_writer_schema_the_reader_cannot_resolve_fails_alike(schema: dict[str, Any]) -> None:
    registry = FakeRegistry({SCHEMA_ID: schema})

    assert _outcomes(registry, KNOWN_ID + b"\x02") == ("DecodeError", "DecodeError")


# -- damaged bytes ----------------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=120))
def test_garbage_behind_a_known_schema_id_fails_or_decodes_alike(body: bytes) -> None:
    assume(not OVERLONG.search(body))

    lean, flat = _outcomes(FakeRegistry(), KNOWN_ID + body)

    assert flat == lean


@PROPERTY
@given(st.data())
def test_a_valid_message_with_one_byte_changed_fails_or_decodes_alike(
    data: st.DataObject,
) -> None:
    position = data.draw(st.integers(len(KNOWN_ID), len(VALID) - 1))
    byte = data.draw(st.integers(0, 255))
    value = VALID[:position] + bytes([byte]) + VALID[position + 1 :]

    lean, flat = _outcomes(FakeRegistry(), value)

    assert flat == lean


def test_every_enum_index_resolves_alike() -> None:
    # Out of range fails; negative ones count from the end, as fastavro indexes its list.
    kind = VALID.index(b"price-service") + len(b"price-service")

    for byte in range(0x80):
        value = VALID[:kind] + bytes([byte]) + VALID[kind + 1 :]
        lean, flat = _outcomes(FakeRegistry(), value)
        assert flat == lean, byte


@pytest.mark.parametrize("length", range(len(VALID)))
def test_every_truncation_of_a_valid_message_is_rejected(length: int) -> None:
    assert _outcomes(FakeRegistry(), VALID[:length]) == ("DecodeError", "DecodeError")


def test_a_varint_longer_than_avro_allows_is_rejected() -> None:
    # An 11-byte timestamp: fastavro wraps it around 64 bits, Avro's limit is 10 bytes.
    value = encode(update("1"))
    symbol, price = b"\x0eBTCUSDT", b"\x0c100.00"
    start = value.index(symbol + price) + len(symbol + price)
    overlong = value[:start] + b"\xff" * 10 + b"\x01" + value[start + 6 :]

    with pytest.raises(DecodeError, match="longer than 10 bytes"):
        PriceRecordDeserializer(FakeRegistry())(overlong)


@pytest.mark.parametrize(
    ("value", "same_words"),
    [
        (None, True),
        (b"\x00\x00", True),
        (b'{"symbol": "BTCUSDT"}', True),
        (b"\x00\x00\x00\x00\x63" + b"\x02A", True),
        (VALID + b"\x00", True),
        # The cause differs (fastavro's EOFError, an IndexError here), not the sentence's start.
        (VALID[:-3], False),
    ],
)
def test_bad_messages_raise_the_lean_decoders_errors(value: bytes | None, same_words: bool) -> None:
    errors = []
    for decode in (
        PriceUpdateDeserializer(FakeRegistry()),
        PriceRecordDeserializer(FakeRegistry()),
    ):
        with pytest.raises(DecodeError) as raised:
            decode(value)
        errors.append(str(raised.value))

    lean, flat = errors
    assert flat == lean if same_words else flat.split(":")[0] == lean.split(":")[0]


def test_registry_outage_is_retriable_and_the_schema_fetched_once_back() -> None:
    registry = FakeRegistry()
    registry.failing.add(SCHEMA_ID)
    decode = PriceRecordDeserializer(registry)

    with pytest.raises(RegistryUnavailableError):
        decode(VALID)
    registry.failing.clear()
    decoded = [decode(VALID) for _ in range(2)]

    assert decoded == [PriceRecord(*_fields(REALISTIC))] * 2
    assert registry.calls == 2

"""The PriceUpdate encoder beside Confluent's AvroSerializer: the same bytes, the same subject.

The registry is `FakeRegisteringRegistry`, an in-memory stand-in with the calls the two
serializers and the decoder make: these tests cover the encoding and the handling of
registration, not the Schema Registry (tests/integration/kafka/test_delivery.py encodes through
the real one).
"""

import copy
import io
import json
import re
from collections.abc import Callable
from typing import Any, cast

import fastavro
import pytest
from confluent_kafka.schema_registry import (
    RegisteredSchema,
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import example, given, settings
from hypothesis import strategies as st

from finance.market.v1 import market_pb2
from finplat.contract import avro
from finplat.contract.errors import ContractError
from finplat.kafka.errors import RegistryUnavailableError
from finplat.kafka.serde import (
    PriceUpdateDeserializer,
    PriceUpdateSerializer,
    compile_encoder,
    varint,
)

TOPIC = "price-updates"
SCHEMA = avro.schema_of(market_pb2.PriceUpdate.DESCRIPTOR)
DESCRIPTOR = market_pb2.PriceUpdate.DESCRIPTOR
PROPERTY = settings(max_examples=300, deadline=None)
KINDS = market_pb2.EventKind.values()
INT64 = st.integers(-(2**63), 2**63 - 1)
# Any code point but the surrogates, which a proto string cannot hold: empty, non-BMP, long.
TEXT = st.text()
UPDATES = st.builds(
    market_pb2.PriceUpdate,
    symbol=TEXT,
    price=TEXT,
    timestamp=INT64,
    volume=TEXT,
    service=TEXT,
    kind=st.sampled_from(KINDS),
    event_id=TEXT,
    exchange=TEXT,
    receive_timestamp=INT64,
)
REALISTIC = market_pb2.PriceUpdate(
    symbol="BTCUSDT",
    price="67012.34000000",
    timestamp=1_723_000_000_123,
    volume="0.00150000",
    service="price-service",
    kind=market_pb2.EVENT_KIND_TRADE,
    event_id="3456789012",
    exchange="binance",
    receive_timestamp=1_723_000_000_130,
)


class FakeRegisteringRegistry:
    """An in-memory Schema Registry: one id per distinct schema text, its versions per subject.

    `down` makes every call fail as a registry that is away does.
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.subjects: dict[str, list[str]] = {}
        self.registrations = 0
        self.down = False

    def _answer(self) -> None:
        if self.down:
            raise SchemaRegistryError(503, 50301, "registry unavailable")

    def register_schema_full_response(
        self, subject_name: str, schema: Schema, normalize_schemas: bool = False
    ) -> RegisteredSchema:
        self._answer()
        self.registrations += 1
        text = schema.schema_str
        assert text is not None
        schema_id = self.ids.setdefault(text, len(self.ids) + 1)
        versions = self.subjects.setdefault(subject_name, [])
        if text not in versions:
            versions.append(text)
        version = versions.index(text) + 1
        return RegisteredSchema(
            subject=subject_name, version=version, schema_id=schema_id, guid=None, schema=schema
        )

    def register_schema(
        self, subject_name: str, schema: Schema, normalize_schemas: bool = False
    ) -> int:
        registered = self.register_schema_full_response(subject_name, schema, normalize_schemas)
        assert registered.schema_id is not None
        return registered.schema_id

    def get_schema(
        self, schema_id: int, subject_name: str | None = None, fmt: str | None = None
    ) -> Schema:
        self._answer()
        for text, known in self.ids.items():
            if known == schema_id:
                return Schema(text, "AVRO")
        raise SchemaRegistryError(404, 40403, "Schema not found")

    def get_associations_by_resource_name(
        self,
        resource_name: str,
        resource_namespace: str,
        resource_type: str | None = None,
        association_types: list[str] | None = None,
        offset: int = 0,
        limit: int = -1,
    ) -> list[Any]:
        # AvroSerializer asks first; none, as in Apicurio: it falls back to `<topic>-value`.
        self._answer()
        return []

    def config(self) -> dict[str, Any]:
        return {}


def _to_dict(update: object, _: SerializationContext) -> dict[str, Any]:
    assert isinstance(update, market_pb2.PriceUpdate)
    return avro.to_record(update)


def confluent(
    registry: FakeRegisteringRegistry,
) -> Callable[[market_pb2.PriceUpdate], bytes | None]:
    """Confluent's AvroSerializer, built as PriceUpdateSerializer used to build it."""
    client = cast(
        SchemaRegistryClient, registry
    )  # the calls it makes are all FakeRegisteringRegistry's
    inner = AvroSerializer(client, json.dumps(SCHEMA), _to_dict)
    context = SerializationContext(TOPIC, MessageField.VALUE)
    return lambda update: inner(update, context)


def _reference_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@PROPERTY
@given(UPDATES)
@example(REALISTIC)
@example(market_pb2.PriceUpdate())
@example(market_pb2.PriceUpdate(symbol="\U0001d11e" * 16, price="€" * 100, event_id="x" * 10_000))
@example(market_pb2.PriceUpdate(timestamp=-(2**63), receive_timestamp=2**63 - 1))
def test_the_bytes_are_those_of_confluents_serializer(update: market_pb2.PriceUpdate) -> None:
    registry = FakeRegisteringRegistry()

    ours = PriceUpdateSerializer(registry, TOPIC)(update)

    assert ours == confluent(registry)(update)
    # Both registered the same text under the same subject, where the registry holds it.
    assert registry.subjects == {f"{TOPIC}-value": [json.dumps(SCHEMA)]}
    assert registry.registrations == 2


# Around each varint length boundary of the zig-zag encoding, and int64's ends.
EDGES = sorted(
    {
        edge + delta
        for bits in range(6, 64, 7)
        for edge in (2**bits, -(2**bits))
        for delta in (-1, 0)
    }
    | {0, -(2**63), 2**63 - 1}
)


@pytest.mark.parametrize("kind", KINDS)
def test_int64_edges_and_every_kind_are_those_of_confluents_serializer(
    kind: "market_pb2.EventKind.ValueType",
) -> None:
    registry = FakeRegisteringRegistry()
    ours, theirs = PriceUpdateSerializer(registry, TOPIC), confluent(registry)

    for value in EDGES:
        update = market_pb2.PriceUpdate(kind=kind, timestamp=value, receive_timestamp=-value - 1)
        assert ours(update) == theirs(update), value


@PROPERTY
@given(UPDATES)
def test_the_decoder_reads_our_bytes_back_to_the_same_update(
    update: market_pb2.PriceUpdate,
) -> None:
    registry = FakeRegisteringRegistry()

    decoded = PriceUpdateDeserializer(registry)(PriceUpdateSerializer(registry, TOPIC)(update))

    assert decoded == update


def test_an_enum_number_without_a_symbol_is_refused_as_to_record_refuses_it() -> None:
    # Proto3 enums are open: a number the enum does not name is still held.
    update = market_pb2.PriceUpdate(symbol="BTCUSDT", kind=market_pb2.EventKind.ValueType(99))
    with pytest.raises(ContractError) as expected:
        avro.to_record(update)

    with pytest.raises(ContractError) as refused:
        PriceUpdateSerializer(FakeRegisteringRegistry(), TOPIC)(update)

    assert str(refused.value) == str(expected.value)


def test_a_registry_that_is_down_is_unavailable_until_it_is_back_then_no_longer_asked() -> None:
    registry = FakeRegisteringRegistry()
    registry.down = True
    serialize = PriceUpdateSerializer(registry, TOPIC)

    for _ in range(2):  # each call tries again
        with pytest.raises(RegistryUnavailableError, match="schema registry"):
            serialize(REALISTIC)
    registry.down = False
    first = serialize(REALISTIC)
    registry.down = True  # registered: the id is kept, the registry not asked again

    assert serialize(REALISTIC) == first == confluent(FakeRegisteringRegistry())(REALISTIC)
    assert registry.registrations == 1


@PROPERTY
@given(UPDATES, st.data())
def test_the_plan_follows_the_schemas_field_order_and_symbol_order(
    update: market_pb2.PriceUpdate, data: st.DataObject
) -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["fields"] = data.draw(st.permutations(schema["fields"]))
    schema["fields"] = schema["fields"][: data.draw(st.integers(0, len(schema["fields"])))]
    for field in schema["fields"]:
        if field["name"] == "kind":
            field["type"]["symbols"] = data.draw(st.permutations(field["type"]["symbols"]))
    written = io.BytesIO()
    fastavro.schemaless_writer(written, fastavro.parse_schema(schema), avro.to_record(update))

    assert compile_encoder(schema, DESCRIPTOR)(update, b"") == written.getvalue()


def _changed(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    schema = copy.deepcopy(SCHEMA)
    change(schema)
    return schema


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in schema["fields"] if f["name"] == name)
    return found


@pytest.mark.parametrize(
    ("schema", "refusal"),
    [
        ({"type": "string"}, "not a record of fields"),
        (_changed(lambda s: s["fields"].append({"name": "bid", "type": "string"})), "'bid'"),
        (_changed(lambda s: _field(s, "symbol").update(type="bytes")), '"bytes" on a TYPE_STRING'),
        (_changed(lambda s: _field(s, "price").update(type=["null", "string"])), "not one"),
        (_changed(lambda s: _field(s, "symbol").update(type="long")), "TYPE_STRING"),
        (_changed(lambda s: _field(s, "timestamp").update(type="int")), '"int" on a TYPE_INT64'),
        (
            _changed(lambda s: _field(s, "timestamp")["type"].update(logicalType="time-micros")),
            "time-micros",
        ),
        (
            _changed(lambda s: _field(s, "kind").update(type="finance.market.v1.EventKind")),
            "not one",
        ),
        (
            _changed(lambda s: _field(s, "kind")["type"]["symbols"].remove("EVENT_KIND_TICKER")),
            "EVENT_KIND_TICKER is no Avro symbol",
        ),
        (
            _changed(lambda s: _field(s, "kind")["type"]["symbols"].append("EVENT_KIND_TRADE")),
            "not distinct",
        ),
    ],
)
def test_a_schema_shape_the_encoder_does_not_write_is_refused_when_compiled(
    schema: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(ContractError, match=re.escape(refusal)):
        compile_encoder(schema, DESCRIPTOR)


@PROPERTY
@given(st.integers(0, 2**64 - 1))
@example(0)
@example(2**64 - 1)
def test_varint_is_the_base_128_varint(value: int) -> None:
    assert varint(value) == _reference_varint(value)


@pytest.mark.parametrize("bits", range(65))
def test_varint_at_every_bit_length(bits: int) -> None:
    for value in {2**bits - 1, 2**bits, 2**bits + 1} - {2**64, 2**64 + 1}:
        assert varint(value) == _reference_varint(value)

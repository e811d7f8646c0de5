"""PriceUpdate <-> Avro: the schema keeps the original names and nothing is lost on the way."""

import io
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finance.market.v1 import market_pb2
from finplat.contract import avro
from finplat.contract.errors import ContractError
from finplat.contract.schemas import load
from tests.paths import SCHEMA_DIR

# Epoch milliseconds fastavro can turn into a datetime (years 1..9999).
_MIN_MS = -62_135_596_800_000
_MAX_MS = 253_402_300_799_999

_ORIGINAL_FIELDS = ["symbol", "price", "timestamp", "volume", "service"]


def _roundtrip_bytes(schema: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    parsed = fastavro.parse_schema(schema)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, parsed, parsed)
    assert isinstance(decoded, dict)
    return decoded


price_updates = st.builds(
    market_pb2.PriceUpdate,
    symbol=st.text(),
    price=st.text(),
    timestamp=st.integers(_MIN_MS, _MAX_MS),
    volume=st.text(),
    service=st.text(),
    kind=st.sampled_from(list(market_pb2.EventKind.values())),
    event_id=st.text(),
    exchange=st.text(),
    receive_timestamp=st.integers(_MIN_MS, _MAX_MS),
)


@given(price_updates)
def test_price_update_survives_avro_encoding(update: market_pb2.PriceUpdate) -> None:
    schema = load(SCHEMA_DIR)

    decoded = _roundtrip_bytes(schema, avro.to_record(update))

    assert avro.from_record(decoded, market_pb2.PriceUpdate) == update


def test_schema_keeps_original_field_names_first() -> None:
    schema = load(SCHEMA_DIR)

    names = [field["name"] for field in schema["fields"]]

    assert names[:5] == _ORIGINAL_FIELDS


def test_timestamps_are_timestamp_millis() -> None:
    schema = load(SCHEMA_DIR)
    types = {field["name"]: field["type"] for field in schema["fields"]}

    for name in ("timestamp", "receive_timestamp"):
        assert types[name] == {"type": "long", "logicalType": "timestamp-millis"}


def test_docs_come_from_proto_comments() -> None:
    schema = load(SCHEMA_DIR)
    docs = {field["name"]: field["doc"] for field in schema["fields"]}

    assert docs["timestamp"] == "Exchange event time, epoch milliseconds (UTC)."


def test_record_of_the_original_message_reads_with_defaults() -> None:
    """A producer that writes only the original five fields stays readable (BACKWARD)."""
    original_schema = {
        "type": "record",
        "name": "PriceUpdate",
        "namespace": "finance.market.v1",
        "fields": [
            {"name": "symbol", "type": "string"},
            {"name": "price", "type": "string"},
            {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "volume", "type": "string"},
            {"name": "service", "type": "string"},
        ],
    }
    buffer = io.BytesIO()
    record = {
        "symbol": "BTCUSDT",
        "price": "50000.0",
        "timestamp": 1640995200000,
        "volume": "100.5",
        "service": "price-service",
    }
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(original_schema), record)
    buffer.seek(0)

    decoded = fastavro.schemaless_reader(
        buffer, fastavro.parse_schema(original_schema), fastavro.parse_schema(load(SCHEMA_DIR))
    )
    assert isinstance(decoded, dict)
    update = avro.from_record(decoded, market_pb2.PriceUpdate)

    assert update == market_pb2.PriceUpdate(
        symbol="BTCUSDT",
        price="50000.0",
        timestamp=1640995200000,
        volume="100.5",
        service="price-service",
    )
    assert update.kind == market_pb2.EVENT_KIND_UNSPECIFIED


def test_unknown_enum_number_is_a_clear_error() -> None:
    update = market_pb2.PriceUpdate(kind=99)  # type: ignore[arg-type]

    with pytest.raises(ContractError, match="enum number 99 has no Avro symbol"):
        avro.to_record(update)

"""The PriceUpdate decoder: Confluent framing, cached writer schemas, resolution, bad input."""

import pytest

from finance.market.v1 import market_pb2
from finplat.kafka.errors import DecodeError, RegistryUnavailableError
from finplat.kafka.serde import PriceUpdateDeserializer
from tests.unit.backtest.service_support import (
    SCHEMA_ID,
    FakeRegistry,
    encode,
    price_update_schema,
    update,
)

FULL = market_pb2.PriceUpdate(
    symbol="BTCUSDT",
    price="67012.34000000",
    timestamp=1_700_000_000_123,
    volume="0.00100000",
    service="price-service",
    kind=market_pb2.EVENT_KIND_AGG_TRADE,
    event_id="987",
    exchange="binance",
    receive_timestamp=1_700_000_000_130,
)


@pytest.mark.parametrize("generic", [False, True])
def test_round_trip_and_schema_fetched_once(generic: bool) -> None:
    registry = FakeRegistry()
    decode = PriceUpdateDeserializer(registry, generic_conversion=generic)

    decoded = [decode(encode(FULL)) for _ in range(3)]

    assert decoded == [FULL, FULL, FULL]
    assert registry.calls == 1


def test_older_writer_schema_is_resolved_with_defaults() -> None:
    old = price_update_schema()
    old["fields"] = old["fields"][:5]  # before kind, event_id, exchange, receive_timestamp
    registry = FakeRegistry({3: old})
    decode = PriceUpdateDeserializer(registry)

    decoded = decode(encode(FULL, schema_id=3, schema=old))

    assert decoded == market_pb2.PriceUpdate(
        symbol="BTCUSDT",
        price="67012.34000000",
        timestamp=1_700_000_000_123,
        volume="0.00100000",
        service="price-service",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "tombstone"),
        (b"\x00\x00", "too short"),
        (b'{"symbol": "BTCUSDT"}', "magic byte 123"),
        (b"\x00\x00\x00\x00\x63" + b"\x02A", "unknown writer schema id 99"),
        (encode(update("1"))[:-3], "not a PriceUpdate"),
        (encode(update("1")) + b"\x00", "1 trailing bytes"),
    ],
)
def test_bad_messages_raise_decode_error(value: bytes | None, message: str) -> None:
    decode = PriceUpdateDeserializer(FakeRegistry())

    with pytest.raises(DecodeError, match=message):
        decode(value)


def test_registry_outage_is_retriable_not_poison() -> None:
    registry = FakeRegistry()
    registry.failing.add(SCHEMA_ID)
    decode = PriceUpdateDeserializer(registry)

    with pytest.raises(RegistryUnavailableError):
        decode(encode(update("1")))

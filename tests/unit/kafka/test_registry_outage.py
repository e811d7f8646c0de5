"""A registry that is down is a retriable outage for both directions, never a crash.

The client is the real confluent-kafka one, pointed at a loopback port where nothing listens:
what it raises there is what the services meet when the registry is stopped.
"""

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from finance.market.v1 import market_pb2
from finplat.kafka.errors import RegistryUnavailableError
from finplat.kafka.serde import PriceUpdateDeserializer, PriceUpdateSerializer
from finplat.stack.process import free_ports
from tests.unit.backtest.service_support import encode

UPDATE = market_pb2.PriceUpdate(symbol="BTCUSDT", price="1.00000000", timestamp=1, volume="1")


def _registry_that_is_down() -> SchemaRegistryClient:
    port = free_ports()[0]  # free: nothing listens on it
    # No retries inside the client: the test is about the error, not the wait.
    return SchemaRegistryClient({"url": f"http://127.0.0.1:{port}", "timeout": 2, "max.retries": 0})


def test_publishing_with_the_registry_down_is_unavailable() -> None:
    serialize = PriceUpdateSerializer(_registry_that_is_down(), "price-updates")

    with pytest.raises(RegistryUnavailableError, match="schema registry"):
        serialize(UPDATE)


def test_decoding_an_unseen_schema_id_with_the_registry_down_is_unavailable() -> None:
    decode = PriceUpdateDeserializer(_registry_that_is_down())

    with pytest.raises(RegistryUnavailableError, match="cannot fetch schema"):
        decode(encode(UPDATE))

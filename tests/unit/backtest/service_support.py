"""Fakes and builders for the backtest service's unit tests (not the pure domain's)."""

import io
import json
import struct
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import fastavro
from confluent_kafka.schema_registry.error import SchemaRegistryError

from finance.market.v1 import market_pb2
from finplat.backtest.domain.stats import StreamStats
from finplat.backtest.service.processor import BatchProcessor, Decoder, StateStore
from finplat.contract import avro
from finplat.kafka.consumer import Record
from finplat.kafka.errors import DeliveryError
from finplat.kafka.serde import PriceUpdateDeserializer

SCHEMA_ID = 7
TOPIC = "price-updates-test"


class FakeClock:
    """Monotonic seconds set by the test."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSchema:
    schema_str: str


class FakeRegistry:
    """Schemas by id; ids in `failing` answer like a registry that is down."""

    def __init__(self, schemas: dict[int, dict[str, Any]] | None = None) -> None:
        self.schemas = schemas if schemas is not None else {SCHEMA_ID: price_update_schema()}
        self.failing: set[int] = set()
        self.calls = 0

    def get_schema(self, schema_id: int) -> FakeSchema:
        self.calls += 1
        if schema_id in self.failing:
            raise SchemaRegistryError(503, 50301, "registry unavailable")
        if schema_id not in self.schemas:
            raise SchemaRegistryError(404, 40403, "Schema not found")
        return FakeSchema(json.dumps(self.schemas[schema_id]))


@dataclass
class FakeDeadLetters:
    """Records dead letters; `fail` makes the next flush fail as a broker outage would."""

    sent: list[tuple[Record, str]] = field(default_factory=list)
    fail: bool = False

    def send(self, record: Record, reason: str) -> None:
        self.sent.append((record, reason))

    def flush(self, timeout_s: float) -> None:
        if self.fail:
            raise DeliveryError("fake dead-letter topic unreachable")


def price_update_schema() -> dict[str, Any]:
    return avro.schema_of(market_pb2.PriceUpdate.DESCRIPTOR)


def encode(
    update: market_pb2.PriceUpdate,
    schema_id: int = SCHEMA_ID,
    schema: dict[str, Any] | None = None,
) -> bytes:
    """Confluent framing around Avro binary, as the serializer writes it."""
    parsed = fastavro.parse_schema(schema or price_update_schema())
    body = io.BytesIO()
    record = avro.to_record(update)
    fastavro.schemaless_writer(body, parsed, {k: record[k] for k in record if k in _names(parsed)})
    return b"\x00" + struct.pack(">I", schema_id) + body.getvalue()


def _names(parsed: Any) -> set[str]:
    return {f["name"] for f in parsed["fields"]}


def update(
    event_id: str,
    symbol: str = "BTCUSDT",
    price: str = "100.00",
    volume: str = "0.1",
    timestamp: int = 1_700_000_000_000,
    kind: "market_pb2.EventKind.ValueType" = market_pb2.EVENT_KIND_TRADE,
) -> market_pb2.PriceUpdate:
    return market_pb2.PriceUpdate(
        symbol=symbol,
        price=price,
        timestamp=timestamp,
        volume=volume,
        service="test",
        kind=kind,
        event_id=event_id,
        exchange="binance",
    )


def record(offset: int, value: bytes | None, partition: int = 0) -> Record:
    return Record(TOPIC, partition, offset, b"BTCUSDT", value, ())


def owning_processor(
    store: StateStore,
    letters: "FakeDeadLetters | None" = None,
    *,
    capacity: int = 100,
    decoder: Callable[["FakeRegistry"], Decoder] = PriceUpdateDeserializer,
    partitions: Collection[int] = (0,),
    clock: "FakeClock | None" = None,
) -> BatchProcessor:
    """A processor over `store` that owns `partitions`, as after the group assigned them."""
    processor = BatchProcessor(
        lambda: StreamStats(clock or FakeClock(), capacity),
        decoder(FakeRegistry()),
        letters or FakeDeadLetters(),
        store,
        threading.Lock(),
        dead_letter_timeout_s=1.0,
    )
    processor.assign(partitions)
    return processor

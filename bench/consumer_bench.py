"""Benchmark: the statistics consumer's decode-and-count throughput beside a raw poll.

Produces COUNT Avro PriceUpdates (Confluent framing, schema in the registry) to a fresh topic
on the running Kafka, then measures on that topic, in the same run:

  1. confluent-kafka's raw consume() rate (no decoding): the ceiling of any consumer;
  2. decoding alone, in memory, with confluent-kafka's own AvroDeserializer (the library, built
     here as the peer), with our lean `PriceUpdateDeserializer` (generic `from_record`
     conversion and the direct constructor), and with `PriceRecordDeserializer`, the flat
     record the consumer decodes into;
  3. decode-and-count in memory, as the consumer does it (flat decoder, checks, de-dup,
     statistics; no Kafka, no SQLite);
  4. the real consumer end to end: poll, decode, de-dup, count, persist state and offsets to
     SQLite per batch, commit; timed from its start (group join included) and from its first
     counted batch.

Target, as a ratio to a part measured in the same run (absolute rates differ from machine to
machine): (4) after its first batch at least 0.8 of the lean decoder's rate alone (2, the
constructor). Run with the stack up (`make up`):

    .venv/bin/python bench/consumer_bench.py [--count 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from finance.market.v1 import market_pb2
from finplat.backtest.adapters.consumer_state import PartitionChanges, SavedPartition
from finplat.backtest.domain.stats import StreamStats
from finplat.backtest.service.app import build_consumer
from finplat.backtest.service.processor import BatchProcessor
from finplat.backtest.service.settings import BacktestSettings
from finplat.contract import avro
from finplat.core.connections import KafkaSettings
from finplat.kafka.admin import ensure_topic
from finplat.kafka.consumer import Record
from finplat.kafka.price_record import PriceRecordDeserializer
from finplat.kafka.producer import PriceUpdateProducer
from finplat.kafka.serde import PriceUpdateDeserializer, PriceUpdateSerializer, registry_client

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
# The consumer's rate over the lean decoder's alone, in the same run (issue #18).
CONSUMER_TARGET_RATIO = 0.8
PARTITIONS = 3


def produce(settings: KafkaSettings, count: int) -> float:
    with registry_client(settings) as registry:
        producer = PriceUpdateProducer(
            settings, PriceUpdateSerializer(registry, settings.topic), {"linger.ms": 20}
        )
        started = time.perf_counter()
        for index in range(count):
            producer.send(
                market_pb2.PriceUpdate(
                    symbol=SYMBOLS[index % len(SYMBOLS)],
                    price=f"{60000 + index % 1000}.{index % 100:02d}000000",
                    timestamp=1_700_000_000_000 + index,
                    volume="0.00100000",
                    service="bench",
                    kind=market_pb2.EVENT_KIND_TRADE,
                    event_id=str(index),
                    exchange="binance",
                    receive_timestamp=1_700_000_000_005 + index,
                )
            )
        if producer.flush(120):
            raise SystemExit("not every message was delivered")
        return time.perf_counter() - started


def raw_poll(settings: KafkaSettings, count: int) -> tuple[list[bytes], float]:
    consumer = Consumer(
        {
            **settings.client_config(),
            "group.id": f"bench-raw-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(settings.topic, p, 0) for p in range(PARTITIONS)])
    values: list[bytes] = []
    started = time.perf_counter()
    while len(values) < count:
        for message in consumer.consume(10_000, 1.0):
            if message.error() is None:
                values.append(message.value())  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    consumer.close()
    return values, elapsed


def confluent_decoder(registry: SchemaRegistryClient, topic: str) -> Callable[[bytes], object]:
    """The peer: confluent-kafka's AvroDeserializer, read with our schema, into the proto."""
    schema = json.dumps(avro.schema_of(market_pb2.PriceUpdate.DESCRIPTOR))

    def from_dict(record: dict[str, Any], _: SerializationContext) -> market_pb2.PriceUpdate:
        return avro.from_record(record, market_pb2.PriceUpdate)

    inner: Callable[[bytes | None, SerializationContext], Any] = AvroDeserializer(
        registry, schema, from_dict
    )
    context = SerializationContext(topic, MessageField.VALUE)
    return lambda value: inner(value, context)


def timed(values: list[bytes], decode: Callable[[bytes], object]) -> float:
    started = time.perf_counter()
    for value in values:
        decode(value)
    return time.perf_counter() - started


def decode_and_count(settings: KafkaSettings, values: list[bytes]) -> float:
    """The processor on in-memory records, with the consumer's decoder: no I/O."""

    class NoDeadLetters:
        def send(self, record: Record, reason: str) -> None:
            raise SystemExit(f"unexpected dead letter: {reason}")

        def flush(self, timeout_s: float) -> None:
            return None

    class NoStore:
        """Owns whatever it is given, with nothing saved; saves nothing."""

        def claim(self, partitions: Collection[int]) -> dict[int, SavedPartition]:
            return {p: SavedPartition(None, [], None) for p in partitions}

        def load(self, partitions: Collection[int]) -> dict[int, SavedPartition]:
            return self.claim(partitions)

        def release(self, partitions: Collection[int]) -> None:
            del partitions

        def save(self, changes: Mapping[int, PartitionChanges]) -> None:
            del changes

        def others(self, owned: Collection[int]) -> dict[int, dict[str, Any]]:
            return {}

    with registry_client(settings) as registry:
        processor = BatchProcessor(
            lambda: StreamStats(time.monotonic, 100_000), PriceRecordDeserializer(registry),
            NoDeadLetters(), NoStore(), threading.Lock(), 10.0,
        )  # fmt: skip
        processor.assign([0])
        records = [Record(settings.topic, 0, i, None, v, ()) for i, v in enumerate(values)]
        started = time.perf_counter()
        for first in range(0, len(records), 2000):
            processor.process(records[first : first + 2000])
        elapsed = time.perf_counter() - started
    counted = processor.snapshot().total_messages
    if counted != len(values):
        raise SystemExit(f"counted {counted} of {len(values)}")
    return elapsed


async def consumer_end_to_end(
    settings: KafkaSettings, count: int, state: Path
) -> tuple[float, float]:
    """Seconds from start (group join included) and from the first counted message."""
    service = BacktestSettings(
        consumer_state_path=state, consumer_group_id=f"bench-{uuid.uuid4().hex}"
    )
    parts = build_consumer(service, settings, threading.Lock())
    task = asyncio.create_task(parts.consumer.run())
    started = time.perf_counter()
    first: float | None = None
    while (counted := parts.consumer.snapshot()[0].total_messages) < count:
        if first is None and counted:
            first, first_count = time.perf_counter(), counted
        # 20 looks a second: each is a GetStats of the whole group, which reads the state store
        # for the partitions other members own; a tighter loop would load the consumer's own
        # process more than any client of GetStats does.
        await asyncio.sleep(0.05)
    finished = time.perf_counter()
    parts.consumer.stop()
    await task
    parts.close(5.0)
    steady = (finished - first) * count / (count - first_count) if first else finished - started
    return finished - started, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    args = parser.parse_args()
    count: int = args.count
    base = KafkaSettings()
    settings = base.model_copy(update={"topic": f"bench-price-updates-{uuid.uuid4().hex[:12]}"})
    ensure_topic(settings, settings.topic, PARTITIONS)
    produced_s = produce(settings, count)
    values, raw_s = raw_poll(settings, count)
    with registry_client(settings) as registry:
        confluent = confluent_decoder(registry, settings.topic)
        generic = PriceUpdateDeserializer(registry, generic_conversion=True)
        lean = PriceUpdateDeserializer(registry)
        rows = [
            ("produce (PriceUpdateSerializer, idempotent)", produced_s),
            ("raw poll, confluent consume()", raw_s),
            ("decode: confluent AvroDeserializer", timed(values, confluent)),
            ("decode: lean + from_record", timed(values, generic)),
            ("decode: lean + constructor", timed(values, lean)),
            ("decode: flat PriceRecord", timed(values, PriceRecordDeserializer(registry))),
        ]
    with tempfile.TemporaryDirectory() as folder:
        in_memory = decode_and_count(settings, values)
        rows.append(("decode-and-count (in memory)", in_memory))
        end_to_end, steady = asyncio.run(
            consumer_end_to_end(settings, count, Path(folder) / "c.sqlite3")
        )
        rows.append(("consumer, group join included", end_to_end))
        rows.append(("consumer, after the first batch", steady))
    decoder_s = dict(rows)["decode: lean + constructor"]
    print(f"\n{count:,} PriceUpdates on {settings.topic} ({PARTITIONS} partitions)\n")
    print(f"{'path':<42}{'seconds':>10}{'msg/s':>12}{'ratio to decoder':>18}")
    for name, seconds in rows:
        print(f"{name:<42}{seconds:>10.2f}{count / seconds:>12,.0f}{decoder_s / seconds:>18.2f}")
    ratio = decoder_s / steady
    verdict = "met" if ratio >= CONSUMER_TARGET_RATIO else "MISSED"
    print(
        f"\nconsumer after its first batch: {ratio:.2f} of the lean decoder's rate alone"
        f" ({verdict}, target >= {CONSUMER_TARGET_RATIO})"
    )


if __name__ == "__main__":
    main()

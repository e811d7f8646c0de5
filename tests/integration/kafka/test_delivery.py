"""10,000 Avro PriceUpdates through the real Kafka and registry: all back, in order, once."""

import uuid
from collections import defaultdict

import pytest
from click.testing import CliRunner
from confluent_kafka.schema_registry import SchemaRegistryClient

from finance.market.v1 import market_pb2
from finplat.cli import finplat
from finplat.core.connections import KafkaSettings
from finplat.kafka.admin import delete_topic, ensure_topic
from finplat.kafka.consumer import PriceUpdateConsumer, Record, next_offsets
from finplat.kafka.producer import PriceUpdateProducer
from finplat.kafka.serde import PriceUpdateDeserializer, PriceUpdateSerializer, registry_client

pytestmark = pytest.mark.integration

TOTAL = 10_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")


@pytest.fixture
def topic_settings(kafka_settings: KafkaSettings) -> KafkaSettings:
    topic = f"test-price-updates-{uuid.uuid4().hex}"
    ensure_topic(kafka_settings, topic, partitions=3)
    return kafka_settings.model_copy(update={"topic": topic})


def _update(index: int) -> market_pb2.PriceUpdate:
    symbol = SYMBOLS[index % len(SYMBOLS)]
    return market_pb2.PriceUpdate(
        symbol=symbol,
        price=f"{100 + index}.25",
        timestamp=1_700_000_000_000 + index,
        volume="0.001",
        service="test",
        kind=market_pb2.EVENT_KIND_TRADE,
        event_id=str(index),
        exchange="binance",
    )


def _read(
    consumer: PriceUpdateConsumer,
    decode: PriceUpdateDeserializer,
    want: int,
    polls: int,
) -> tuple[list[Record], list[market_pb2.PriceUpdate]]:
    records: list[Record] = []
    for _ in range(polls):
        if len(records) >= want:
            break
        records.extend(consumer.poll(1000, 0.5))
    return records, [decode(record.value) for record in records]


def test_ten_thousand_updates_in_order_and_resumed_without_loss_or_repeat(
    topic_settings: KafkaSettings,
) -> None:
    with registry_client(topic_settings) as registry:
        _exchange_ten_thousand(topic_settings, registry)


def _exchange_ten_thousand(topic_settings: KafkaSettings, registry: SchemaRegistryClient) -> None:
    producer = PriceUpdateProducer(
        topic_settings, PriceUpdateSerializer(registry, topic_settings.topic)
    )
    decode = PriceUpdateDeserializer(registry)
    group = f"test-group-{uuid.uuid4().hex}"
    sent = [_update(index) for index in range(TOTAL)]

    for update in sent:
        producer.send(update)
    remaining = producer.flush(30)

    first = PriceUpdateConsumer(topic_settings, group)
    first.subscribe()
    first_records, first_updates = _read(first, decode, TOTAL // 2, polls=120)
    first.commit(next_offsets(first_records))
    first.close()

    second = PriceUpdateConsumer(topic_settings, group)
    second.subscribe()
    second_records, second_updates = _read(second, decode, TOTAL - len(first_records), polls=120)
    extra_records, _ = _read(second, decode, 1, polls=4)
    second.close()

    assert remaining == 0
    assert (producer.delivered, producer.failed) == (TOTAL, 0)
    assert 0 < len(first_records) < TOTAL
    received = first_updates + second_updates
    assert sorted(int(u.event_id) for u in received) == list(range(TOTAL))
    assert extra_records == []
    per_symbol: dict[str, list[int]] = defaultdict(list)
    for update in received:
        per_symbol[update.symbol].append(int(update.event_id))
    for symbol, ids in per_symbol.items():
        assert ids == sorted(ids), f"{symbol} out of order"
    assert received[0] == sent[int(received[0].event_id)]
    partitions_by_symbol = defaultdict(set)
    for record, update in zip(first_records + second_records, received, strict=True):
        partitions_by_symbol[update.symbol].add(record.partition)
        assert record.key == update.symbol.encode()
    assert all(len(partitions) == 1 for partitions in partitions_by_symbol.values())


def test_probe_reads_back_what_it_produced(kafka_settings: KafkaSettings) -> None:
    # A topic of its own: the probe's messages must not reach a platform the user runs.
    topic = f"test-probe-{uuid.uuid4().hex}"
    ensure_topic(kafka_settings, topic, partitions=3)
    try:
        result = CliRunner().invoke(
            finplat, ["kafka", "probe", "--count", "5"], env={"FINPLAT_KAFKA_TOPIC": topic}
        )
    finally:
        delete_topic(kafka_settings, topic)

    assert result.exit_code == 0, result.output
    assert result.output.count("PROBEUSDT") == 5
    assert "read back all 5 messages" in result.output

"""The Kafka probe: produce a few Avro PriceUpdates through the registry and read them back."""

import time
import uuid
from dataclasses import dataclass

from finance.market.v1 import market_pb2
from finplat.core.connections import KafkaSettings
from finplat.kafka.consumer import PriceUpdateConsumer
from finplat.kafka.errors import DeliveryError
from finplat.kafka.producer import PriceUpdateProducer
from finplat.kafka.serde import PriceUpdateDeserializer, PriceUpdateSerializer, registry_client

PROBE_SERVICE = "finplat-probe"


@dataclass(frozen=True)
class ProbeResult:
    """What the probe sent and what came back, in the order read."""

    sent: list[market_pb2.PriceUpdate]
    received: list[tuple[int, int, market_pb2.PriceUpdate]]


def probe_updates(symbol: str, count: int, now_ms: int) -> list[market_pb2.PriceUpdate]:
    """Distinct, recognisable updates: the run id in each event id."""
    run = uuid.uuid4().hex[:12]
    return [
        market_pb2.PriceUpdate(
            symbol=symbol,
            price=f"{50000 + index}.01",
            timestamp=now_ms + index,
            volume="0.5",
            service=PROBE_SERVICE,
            kind=market_pb2.EVENT_KIND_TRADE,
            event_id=f"probe-{run}-{index}",
            exchange="finplat",
            receive_timestamp=now_ms + index,
        )
        for index in range(count)
    ]


def run_probe(settings: KafkaSettings, symbol: str, count: int, timeout_s: float) -> ProbeResult:
    """Produce `count` updates, then read the topic from where it ended until all are back."""
    registry = registry_client(settings)
    consumer = PriceUpdateConsumer(settings, group_id=f"{PROBE_SERVICE}-{uuid.uuid4().hex}")
    decode = PriceUpdateDeserializer(registry)
    try:
        start = consumer.topic_end_offsets(timeout_s)
        sent = probe_updates(symbol, count, int(time.time() * 1000))
        producer = PriceUpdateProducer(settings, PriceUpdateSerializer(registry, settings.topic))
        for update in sent:
            producer.send(update)
        if producer.flush(timeout_s) or producer.delivered != count:
            raise DeliveryError(f"delivered {producer.delivered} of {count} probe messages")
        consumer.assign(start)
        wanted = {update.event_id for update in sent}
        received: list[tuple[int, int, market_pb2.PriceUpdate]] = []
        deadline = time.monotonic() + timeout_s
        while wanted and time.monotonic() < deadline:
            for record in consumer.poll(500, 0.5):
                update = decode(record.value)
                if update.event_id in wanted:
                    wanted.discard(update.event_id)
                    received.append((record.partition, record.offset, update))
        return ProbeResult(sent=sent, received=received)
    finally:
        consumer.close()
        registry.close()

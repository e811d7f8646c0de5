"""The topic read back for StreamPrices, on the stack's Kafka: the live reader of the other
shards' symbols and the replay of a resumed stream."""

import asyncio
import time
from collections.abc import Iterator

import pytest

from finance.market.v1 import market_pb2
from finplat.core.connections import KafkaSettings
from finplat.core.retry import RetryPolicy
from finplat.kafka.producer import PriceUpdateProducer
from finplat.kafka.serde import PriceUpdateDeserializer, PriceUpdateSerializer, registry_client
from finplat.price.adapters.kafka_updates import KafkaPriceReader, KafkaReplay
from finplat.price.service.resume import Resume
from tests.integration.price.harness import fresh_topic
from tests.support import eventually_async

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.fixture
def topic(kafka_settings: KafkaSettings) -> KafkaSettings:
    return kafka_settings.model_copy(update={"topic": fresh_topic(kafka_settings)})


@pytest.fixture
def decode(kafka_settings: KafkaSettings) -> Iterator[PriceUpdateDeserializer]:
    with registry_client(kafka_settings) as registry:
        yield PriceUpdateDeserializer(registry)


def _updates(symbols: tuple[str, ...], count: int) -> list[market_pb2.PriceUpdate]:
    now = int(time.time() * 1000)
    return [
        market_pb2.PriceUpdate(
            symbol=symbols[n % len(symbols)],
            price=f"{n}.0",
            timestamp=now,
            kind=market_pb2.EVENT_KIND_TRADE,
            event_id=str(n),
            receive_timestamp=now,
        )
        for n in range(count)
    ]


def _publish(kafka: KafkaSettings, updates: list[market_pb2.PriceUpdate]) -> None:
    with registry_client(kafka) as registry:
        producer = PriceUpdateProducer(kafka, PriceUpdateSerializer(registry, kafka.topic))
        for update in updates:
            producer.send(update)
        assert producer.flush(10) == 0


async def test_a_replay_reads_what_followed_the_position_to_the_end(
    topic: KafkaSettings, decode: PriceUpdateDeserializer
) -> None:
    updates = _updates(("BTCUSDT", "ETHUSDT", "XRPUSDT"), 30)
    _publish(topic, updates)
    btc = [u for u in updates if u.symbol == "BTCUSDT"]
    resume = Resume({"BTCUSDT": btc[3]}, {}, limit=100)
    replay = KafkaReplay(topic, decode)

    try:
        truncated = await replay.read(resume, timeout_s=10)
    finally:
        replay.close()

    assert truncated == frozenset()
    assert resume.finish(truncated) == btc[4:]


async def test_the_reader_publishes_the_wanted_symbols_from_its_start_on(
    topic: KafkaSettings, decode: PriceUpdateDeserializer
) -> None:
    before, after = _updates(("ETHUSDT",), 3), _updates(("BTCUSDT", "ETHUSDT"), 10)
    _publish(topic, before)
    reader = KafkaPriceReader(topic, decode, {"ETHUSDT"}, RetryPolicy(initial_s=0.1, max_s=1))
    delivered: list[market_pb2.PriceUpdate] = []
    task = asyncio.create_task(reader.run(delivered.extend))
    try:
        await eventually_async(lambda: reader.reason is None, 10, 0.05)
        _publish(topic, after)
        wanted = [u for u in after if u.symbol == "ETHUSDT"]
        await eventually_async(lambda: len(delivered) >= len(wanted), 10, 0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert delivered == wanted

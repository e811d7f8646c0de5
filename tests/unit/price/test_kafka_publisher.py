"""The Kafka sink's batch write: in order, and never holding the event loop for a whole batch."""

import asyncio
import time

import pytest

from finance.market.v1 import market_pb2
from finplat.contract.errors import ContractError
from finplat.kafka.errors import QueueFullError
from finplat.price.adapters.errors import StoreUnavailableError
from finplat.price.adapters.kafka_publisher import YIELD_EVERY, KafkaPublisher


class FakeProducer:
    """Records what is sent, and how many ticks of the loop had run by then."""

    def __init__(self, room: int = 10**9) -> None:
        self.sent: list[tuple[int, int]] = []
        self.ticks = 0
        self.room = room

    def send(self, update: market_pb2.PriceUpdate) -> None:
        if update.symbol == "REFUSED":
            raise ContractError("the contract refuses this update")
        if len(self.sent) >= self.room:
            raise QueueFullError("full")
        self.sent.append((update.timestamp, self.ticks))


def _publisher(producer: FakeProducer) -> KafkaPublisher:
    return KafkaPublisher(producer)  # type: ignore[arg-type]  # duck-typed fake


@pytest.mark.asyncio
async def test_a_large_batch_lets_other_tasks_run() -> None:
    producer = FakeProducer()
    batch = [market_pb2.PriceUpdate(symbol="BTCUSDT", timestamp=n) for n in range(200)]

    async def tick() -> None:
        while True:
            producer.ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(tick())
    await _publisher(producer).write(batch)
    ticking.cancel()

    assert [n for n, _ in producer.sent] == list(range(200))
    # The other task ran between every YIELD_EVERY updates, not only after the batch.
    ticks_at = [ticks for n, ticks in producer.sent if n % YIELD_EVERY == 0]
    assert ticks_at == sorted(ticks_at)
    assert len(set(ticks_at)) == len(ticks_at)


@pytest.mark.asyncio
async def test_a_full_queue_says_how_far_it_got() -> None:
    producer = FakeProducer(room=50)
    batch = [market_pb2.PriceUpdate(symbol="BTCUSDT", timestamp=n) for n in range(100)]

    with pytest.raises(StoreUnavailableError) as caught:
        await _publisher(producer).write(batch)

    assert caught.value.written == 50


@pytest.mark.asyncio
async def test_an_update_the_contract_refuses_is_counted_as_refused_and_the_rest_sent() -> None:
    producer = FakeProducer()
    publisher = _publisher(producer)
    batch = [market_pb2.PriceUpdate(symbol="BTCUSDT", timestamp=1),
             market_pb2.PriceUpdate(symbol="REFUSED", timestamp=2),
             market_pb2.PriceUpdate(symbol="BTCUSDT", timestamp=3)]  # fmt: skip

    await publisher.write(batch)

    assert [n for n, _ in producer.sent] == [1, 3]
    assert publisher.refused == {"invalid": 1}


class FakeProducerWithSlowRegistry(FakeProducer):
    """Its first send blocks, as encoding does while the registry hangs on registration."""

    def send(self, update: market_pb2.PriceUpdate) -> None:
        if not self.sent:
            time.sleep(0.3)
        super().send(update)


@pytest.mark.asyncio
async def test_a_registry_that_hangs_on_the_first_encoding_does_not_stall_the_event_loop() -> None:
    producer = FakeProducerWithSlowRegistry()
    batch = [market_pb2.PriceUpdate(symbol="BTCUSDT", timestamp=n) for n in range(3)]
    loop_turns = 0

    async def turn() -> None:
        nonlocal loop_turns
        while True:
            loop_turns += 1
            await asyncio.sleep(0.01)

    turning = asyncio.create_task(turn())
    await _publisher(producer).write(batch)
    turning.cancel()

    assert [n for n, _ in producer.sent] == [0, 1, 2]
    assert loop_turns >= 10  # the loop went on turning through the 0.3 s the encoding took

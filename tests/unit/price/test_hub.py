"""StreamPrices fan-out: filtering, batching, and slow subscribers cut off alone."""

import asyncio

import pytest

from finance.market.v1 import market_pb2
from finplat.price.hub import PriceHub, SlowSubscriberError


def _update(symbol: str, n: int) -> market_pb2.PriceUpdate:
    return market_pb2.PriceUpdate(symbol=symbol, price=f"{n}.0", timestamp=n)


@pytest.mark.asyncio
async def test_subscriber_gets_only_its_symbols_in_order() -> None:
    hub = PriceHub()
    with hub.subscribe(["btcusdt"]) as btc, hub.subscribe() as everything:
        hub.publish(_update("BTCUSDT", 1))
        hub.publish(_update("ETHUSDT", 2))
        hub.publish(_update("BTCUSDT", 3))

        btc_batch = await btc.next_batch()
        all_batch = await everything.next_batch()

    assert [u.timestamp for u in btc_batch] == [1, 3]
    assert [u.timestamp for u in all_batch] == [1, 2, 3]


@pytest.mark.asyncio
async def test_batches_are_capped() -> None:
    hub = PriceHub(max_batch=2)
    with hub.subscribe() as subscription:
        for n in range(5):
            hub.publish(_update("BTCUSDT", n))

        sizes = [len(await subscription.next_batch()) for _ in range(3)]

    assert sizes == [2, 2, 1]


@pytest.mark.asyncio
async def test_slow_subscriber_is_cut_off_and_others_continue() -> None:
    hub = PriceHub(queue_capacity=3)
    with hub.subscribe() as slow, hub.subscribe() as fast:
        for n in range(3):
            hub.publish(_update("BTCUSDT", n))
        first = await fast.next_batch()
        hub.publish(_update("BTCUSDT", 3))
        hub.publish(_update("BTCUSDT", 4))

        with pytest.raises(SlowSubscriberError, match="more than 3 updates behind"):
            await slow.next_batch()
        second = await fast.next_batch()

    assert [u.timestamp for u in first + second] == [0, 1, 2, 3, 4]
    assert hub.cut_off == 1


@pytest.mark.asyncio
async def test_waiting_subscriber_wakes_on_publish_and_detaches() -> None:
    hub = PriceHub()
    with hub.subscribe(["ETHUSDT"]) as subscription:
        waiting = asyncio.create_task(subscription.next_batch())
        await asyncio.sleep(0)
        hub.publish(_update("ETHUSDT", 7))
        batch = await asyncio.wait_for(waiting, 1)
        attached = hub.subscribers

    assert [u.timestamp for u in batch] == [7]
    assert (attached, hub.subscribers) == (1, 0)

"""StreamPrices fan-out: filtering, batching, encoding, and slow subscribers cut off alone."""

import asyncio

import pytest

from finance.market.v1 import market_pb2, price_service_pb2
from finplat.price.service.stream_hub import SlowSubscriberError, StreamHub


def _update(symbol: str, n: int) -> market_pb2.PriceUpdate:
    return market_pb2.PriceUpdate(symbol=symbol, price=f"{n}.0", timestamp=n)


@pytest.mark.asyncio
async def test_subscriber_gets_only_its_symbols_in_order() -> None:
    hub = StreamHub()
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
    hub = StreamHub(max_batch=2)
    with hub.subscribe() as subscription:
        for n in range(5):
            hub.publish(_update("BTCUSDT", n))

        sizes = [len(await subscription.next_batch()) for _ in range(3)]

    assert sizes == [2, 2, 1]


@pytest.mark.asyncio
async def test_slow_subscriber_is_cut_off_and_others_continue() -> None:
    hub = StreamHub(queue_capacity=3)
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
    hub = StreamHub()
    with hub.subscribe(["ETHUSDT"]) as subscription:
        waiting = asyncio.create_task(subscription.next_batch())
        await asyncio.sleep(0)
        hub.publish(_update("ETHUSDT", 7))
        batch = await asyncio.wait_for(waiting, 1)
        attached = hub.subscribers

    assert [u.timestamp for u in batch] == [7]
    assert (attached, hub.subscribers) == (1, 0)


@pytest.mark.asyncio
async def test_message_is_the_encoded_response_of_the_batch() -> None:
    hub = StreamHub()
    # Long enough that the element's length takes two varint bytes.
    big = market_pb2.PriceUpdate(symbol="BTCUSDT", price="1" * 200, timestamp=2, event_id="9")
    with hub.subscribe(["BTCUSDT"]) as subscription:
        hub.publish(_update("BTCUSDT", 1))
        single = await subscription.next_message()
        hub.publish(big)
        hub.publish(_update("BTCUSDT", 3))
        double = await subscription.next_message()

    def decoded(message: bytes) -> list[market_pb2.PriceUpdate]:
        return list(price_service_pb2.StreamPricesResponse.FromString(message).prices)

    assert decoded(single) == [_update("BTCUSDT", 1)]
    assert decoded(double) == [big, _update("BTCUSDT", 3)]
    assert (
        double
        == price_service_pb2.StreamPricesResponse(
            prices=[big, _update("BTCUSDT", 3)]
        ).SerializeToString()
    )


@pytest.mark.asyncio
async def test_subscribers_with_the_same_filter_read_at_their_own_pace() -> None:
    hub = StreamHub()
    with (
        hub.subscribe(["BTCUSDT", "ethusdt"]) as first,
        hub.subscribe(["ETHUSDT", "BTCUSDT"]) as second,
        hub.subscribe(["ETHUSDT"]) as eth,
    ):
        hub.publish(_update("BTCUSDT", 1))
        early = await first.next_batch()
        hub.publish(_update("ETHUSDT", 2))
        hub.publish(_update("SOLUSDT", 3))
        hub.publish(_update("BTCUSDT", 4))

        assert [u.timestamp for u in early + await first.next_batch()] == [1, 2, 4]
        assert [u.timestamp for u in await second.next_batch()] == [1, 2, 4]
        assert [u.timestamp for u in await eth.next_batch()] == [2]
        assert (first.behind, second.behind, eth.behind) == (0, 0, 0)


@pytest.mark.asyncio
async def test_updates_published_while_a_message_is_in_flight_go_together() -> None:
    hub = StreamHub()
    with hub.subscribe() as subscription:
        received: list[list[int]] = []

        async def read() -> None:
            while len(received) < 2 or sum(map(len, received)) < 4:
                batch = await subscription.next_batch()
                received.append([u.timestamp for u in batch])
                await asyncio.sleep(0)  # the message "in flight"

        reading = asyncio.create_task(read())
        await asyncio.sleep(0)
        hub.publish(_update("BTCUSDT", 0))  # alone: the subscriber was waiting
        await asyncio.sleep(0)
        for n in range(1, 4):  # while it writes
            hub.publish(_update("BTCUSDT", n))
        await asyncio.wait_for(reading, 1)

    assert received == [[0], [1, 2, 3]]


@pytest.mark.asyncio
async def test_skip_ahead_jumps_to_the_newest_updates_without_cutting_off() -> None:
    hub = StreamHub(queue_capacity=4, max_batch=2, skip_ahead=True)
    with hub.subscribe() as slow, hub.subscribe() as fast:
        for n in range(10):
            hub.publish(_update("BTCUSDT", n))
            assert [u.timestamp for u in await fast.next_batch()] == [n]

        resumed = await slow.next_batch()
        hub.publish(_update("BTCUSDT", 10))
        after = await slow.next_batch()

    assert [u.timestamp for u in resumed] == [8, 9]
    assert [u.timestamp for u in after] == [10]
    assert (slow.skipped, slow.overflowed, hub.cut_off) == (8, False, 0)


@pytest.mark.asyncio
async def test_cancelled_waiter_leaves_the_others_waiting() -> None:
    hub = StreamHub()
    with hub.subscribe() as leaving, hub.subscribe() as staying:
        gone = asyncio.create_task(leaving.next_batch())
        waiting = asyncio.create_task(staying.next_batch())
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        hub.publish(_update("BTCUSDT", 5))

        assert [u.timestamp for u in await asyncio.wait_for(waiting, 1)] == [5]
    assert gone.cancelled()


def test_publish_without_subscribers_keeps_nothing() -> None:
    hub = StreamHub()
    with hub.subscribe(["ETHUSDT"]):
        pass
    hub.publish(_update("ETHUSDT", 1))

    assert (hub.published, hub.subscribers) == (1, 0)
    assert hub._logs == {}  # the log of a filter goes with its last subscriber


def test_log_keeps_at_most_twice_its_capacity() -> None:
    hub = StreamHub(queue_capacity=10)
    with hub.subscribe():
        for n in range(1000):
            hub.publish(_update("BTCUSDT", n))
        (log,) = hub._logs.values()

    assert len(log.updates) < 20
    assert (log.first + len(log.updates), log.end) == (1000, 1000)

"""The sink buffer: batches, bound, drop-oldest, retry and catch-up, with a fake store."""

import asyncio
from collections.abc import Sequence

import pytest

from finplat.core.retry import RetryPolicy
from finplat.price.adapters.errors import StoreRejectedError, StoreUnavailableError
from finplat.price.service.sink_buffer import BufferedSink, drain_all
from tests.support import eventually_async

FAST_RETRY = RetryPolicy(initial_s=0.001, max_s=0.002, jitter=0)


class FakeStore:
    """Records batches; fails while `down` is set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.down = False

    async def write(self, batch: Sequence[int]) -> None:
        if self.down:
            raise StoreUnavailableError("fake store is down")
        self.batches.append(list(batch))


@pytest.mark.asyncio
async def test_writes_in_batches_in_order() -> None:
    store = FakeStore()
    sink = BufferedSink("fake", store.write, capacity=100, batch_size=3, retry=FAST_RETRY)
    for item in range(7):
        sink.offer(item)

    task = asyncio.create_task(sink.run())
    await eventually_async(lambda: sink.stats.written == 7, 2)
    task.cancel()

    assert store.batches == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.asyncio
async def test_full_buffer_drops_the_oldest_and_counts() -> None:
    store = FakeStore()
    sink = BufferedSink("fake", store.write, capacity=3, batch_size=10, retry=FAST_RETRY)

    for item in range(5):
        sink.offer(item)
    left = await sink.drain(timeout_s=1)

    assert left == 0
    assert store.batches == [[2, 3, 4]]
    assert (sink.stats.accepted, sink.stats.dropped, sink.stats.written) == (5, 2, 3)


@pytest.mark.asyncio
async def test_store_down_then_back_catches_up_without_loss() -> None:
    store = FakeStore()
    store.down = True
    sink = BufferedSink("fake", store.write, capacity=100, batch_size=4, retry=FAST_RETRY)
    task = asyncio.create_task(sink.run())
    for item in range(10):
        sink.offer(item)
    await eventually_async(lambda: sink.stats.failures >= 3, 2)
    unhealthy = sink.stats.healthy

    store.down = False
    await eventually_async(lambda: sink.stats.written == 10, 2)
    task.cancel()

    assert unhealthy is False
    assert sink.stats.healthy is True
    assert [item for batch in store.batches for item in batch] == list(range(10))
    assert sink.stats.dropped == 0


@pytest.mark.asyncio
async def test_failed_batch_keeps_the_bound() -> None:
    store = FakeStore()
    store.down = True
    sink = BufferedSink("fake", store.write, capacity=4, batch_size=4, retry=FAST_RETRY)
    for item in range(4):
        sink.offer(item)
    task = asyncio.create_task(sink.run())
    await eventually_async(lambda: sink.stats.failures >= 1, 2)

    for item in range(4, 8):
        sink.offer(item)
    store.down = False
    await eventually_async(lambda: len(sink) == 0 and sink.stats.written > 0, 2)
    task.cancel()

    written = [item for batch in store.batches for item in batch]
    assert written == [4, 5, 6, 7]
    assert sink.stats.dropped == 4


@pytest.mark.asyncio
async def test_drain_gives_up_at_the_deadline() -> None:
    store = FakeStore()
    store.down = True
    sink = BufferedSink("fake", store.write, capacity=10, batch_size=10, retry=FAST_RETRY)
    sink.offer(1)

    left = await sink.drain(timeout_s=0.05)

    assert left == 1


@pytest.mark.asyncio
async def test_sinks_drain_side_by_side_within_one_timeout() -> None:
    # The first sink's store takes its batch only once the second's has taken one: drained one
    # after the other, the first's write would never return (the 5 s bound below fails it).
    second_written = asyncio.Event()

    async def after_the_second(batch: Sequence[int]) -> None:
        await second_written.wait()

    async def second(batch: Sequence[int]) -> None:
        second_written.set()

    sinks = [
        BufferedSink("first", after_the_second, capacity=10, batch_size=10, retry=FAST_RETRY),
        BufferedSink("second", second, capacity=10, batch_size=10, retry=FAST_RETRY),
    ]
    for sink in sinks:
        sink.offer(1)

    left = await asyncio.wait_for(drain_all(sinks, timeout_s=0.5), timeout=5)

    assert left == [0, 0]
    assert [sink.stats.written for sink in sinks] == [1, 1]


@pytest.mark.asyncio
async def test_rejected_batch_is_counted_and_not_retried() -> None:
    attempts: list[list[int]] = []

    async def refuse(batch: Sequence[int]) -> None:
        attempts.append(list(batch))
        raise StoreRejectedError("fake store refuses this data")

    sink = BufferedSink("fake", refuse, capacity=10, batch_size=10, retry=FAST_RETRY)
    sink.offer(1)
    sink.offer(2)

    left = await sink.drain(timeout_s=1)

    assert left == 0
    assert attempts == [[1, 2]]
    assert (sink.stats.rejected, sink.stats.written) == (2, 0)


@pytest.mark.asyncio
async def test_partial_write_retries_only_the_rest() -> None:
    calls: list[list[int]] = []

    async def take_two_then_fail_once(batch: Sequence[int]) -> None:
        calls.append(list(batch))
        if len(calls) == 1:
            raise StoreUnavailableError("fake store took two, then went away", written=2)

    sink = BufferedSink(
        "fake", take_two_then_fail_once, capacity=10, batch_size=10, retry=FAST_RETRY
    )
    for item in range(5):
        sink.offer(item)

    left = await sink.drain(timeout_s=1)

    assert left == 0
    assert calls == [[0, 1, 2, 3, 4], [2, 3, 4]]
    assert sink.stats.written == 5


@pytest.mark.asyncio
async def test_linger_gathers_a_partial_batch_into_one_write() -> None:
    store = FakeStore()
    sink = BufferedSink(
        "fake", store.write, capacity=100, batch_size=10, retry=FAST_RETRY, linger_s=0.2
    )
    task = asyncio.create_task(sink.run())

    sink.offer(1)
    await asyncio.sleep(0.02)
    sink.offer(2)
    await eventually_async(lambda: sink.stats.written == 2, 2)
    task.cancel()

    assert store.batches == [[1, 2]]

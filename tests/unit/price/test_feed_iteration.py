"""Reading the feed: every item its runner queued is read, then the runner's end is told.

The runner here is a fake of our own (`FeedWithFakeRunner`): it hands the feed real trade frames
and then fails, returns or waits, so the iteration's end can be tested without a server.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from finplat.price.adapters.binance.feed import BinanceFeed
from finplat.price.adapters.binance.settings import FeedSettings
from finplat.price.adapters.errors import FeedError
from tests.unit.price.conftest import FakeClock


def _trade(trade_id: int) -> bytes:
    return json.dumps(
        {"e": "trade", "E": 1_700_000_000_000 + trade_id, "s": "BTCUSDT", "t": trade_id,
         "p": "42000.10", "q": "0.5", "T": 1_700_000_000_000 + trade_id, "m": True}
    ).encode()  # fmt: skip


class FeedWithFakeRunner(BinanceFeed):
    """A feed whose runner hands over `frames`, then does `then` (fail, return, wait)."""

    def __init__(
        self, frames: int, then: Callable[[], Awaitable[None]], queue_size: int = 100
    ) -> None:
        super().__init__(FeedSettings(queue_size=queue_size), clock=FakeClock())
        self._frames = frames
        self._then = then
        self.handed_over = asyncio.Event()

    async def _run(self) -> None:
        for trade_id in range(self._frames):
            await self.handle_frame(_trade(trade_id))
        self.handed_over.set()
        await self._then()


async def _fail() -> None:
    raise RuntimeError("connection limiter broke")


async def _return() -> None:
    return None


async def _wait_forever() -> None:
    await asyncio.Event().wait()


async def _read_into(feed: BinanceFeed, read: list[int]) -> list[int]:
    async for item in feed:
        read.append(int(item.event_id))  # type: ignore[union-attr]
    return read


async def _read_all(feed: BinanceFeed) -> list[int]:
    return await _read_into(feed, [])


@pytest.mark.asyncio
async def test_the_items_queued_before_the_runner_failed_are_read_then_its_error() -> None:
    feed = FeedWithFakeRunner(3, _fail)
    read: list[int] = []
    async with feed:
        with pytest.raises(FeedError, match="the feed stopped") as stopped:
            await _read_into(feed, read)

    assert read == [0, 1, 2]
    assert isinstance(stopped.value.__cause__, RuntimeError)


@pytest.mark.asyncio
async def test_a_reader_waiting_for_the_next_item_learns_at_once_that_the_runner_ended() -> None:
    async def end_later() -> None:
        await asyncio.sleep(0.05)  # the reader is waiting on the empty queue by then

    feed = FeedWithFakeRunner(1, end_later)
    async with feed:
        with pytest.raises(FeedError):
            await asyncio.wait_for(_read_all(feed), 5.0)  # TimeoutError if never woken


@pytest.mark.asyncio
async def test_a_full_queue_is_read_to_the_end_before_the_runner_ending_is_told() -> None:
    # The queue is full when the runner ends: nothing more fits in it, not even the end.
    feed = FeedWithFakeRunner(4, _return, queue_size=4)
    async with feed:
        await feed.handed_over.wait()
        await asyncio.sleep(0)  # the runner's end is seen
        with pytest.raises(FeedError) as stopped:
            await asyncio.wait_for(_read_all(feed), 5.0)

    assert stopped.value.__cause__ is None
    assert feed.stats.updates == 4


@pytest.mark.asyncio
async def test_a_cancelled_runner_ends_the_iteration_quietly() -> None:
    feed = FeedWithFakeRunner(2, _wait_forever)
    async with feed:
        reader = asyncio.create_task(_read_all(feed))
        await feed.handed_over.wait()
        await asyncio.sleep(0.01)  # the reader has both items and waits for a third
        assert feed._runner is not None
        feed._runner.cancel()

        assert await asyncio.wait_for(reader, 5.0) == [0, 1]


@pytest.mark.asyncio
async def test_reading_outside_async_with_is_refused() -> None:
    with pytest.raises(FeedError, match="inside `async with`"):
        await anext(FeedWithFakeRunner(0, _return))

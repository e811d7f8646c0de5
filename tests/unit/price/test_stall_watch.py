"""The feed's stall watch: silence while waiting for a frame is a stall; handling one is not."""

import asyncio

import pytest

from finplat.price.adapters.binance.connection import _StallWatch

STALL_S = 0.1


async def _wait_for_a_frame(watch: _StallWatch, seconds: float) -> None:
    watch.waiting()
    await asyncio.sleep(seconds)
    watch.received()


@pytest.mark.asyncio
async def test_waiting_longer_than_the_stall_timeout_cancels_the_reader() -> None:
    async def reader() -> bool:
        watch = _StallWatch(STALL_S)
        try:
            await _wait_for_a_frame(watch, STALL_S / 4)  # a frame came in time
            await _wait_for_a_frame(watch, 30.0)  # then none
        except asyncio.CancelledError:
            watch.absorb()
            return watch.fired
        finally:
            watch.stop()
        return False

    task = asyncio.create_task(reader())

    assert await asyncio.wait_for(task, 10.0)
    assert not task.cancelled()  # the reader carries on (to close and reconnect)


@pytest.mark.asyncio
async def test_handling_a_frame_for_longer_than_the_stall_timeout_is_no_stall() -> None:
    async def reader() -> None:
        watch = _StallWatch(STALL_S)
        try:
            await _wait_for_a_frame(watch, STALL_S / 4)
            await asyncio.sleep(STALL_S * 4)  # e.g. a REST backfill after a gap
            await _wait_for_a_frame(watch, STALL_S / 4)
        finally:
            watch.stop()

    await asyncio.wait_for(reader(), 10.0)  # raises CancelledError if the watch fired


@pytest.mark.asyncio
async def test_no_stall_timeout_never_cancels() -> None:
    async def reader() -> None:
        watch = _StallWatch(None)
        try:
            await _wait_for_a_frame(watch, STALL_S * 3)
        finally:
            watch.stop()

    await asyncio.wait_for(reader(), 10.0)

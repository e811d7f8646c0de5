"""The price service's event loop: uvloop when installed, asyncio's on request."""

import asyncio

import uvloop

from finplat.price import eventloop


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_runs_on_uvloop_by_default() -> None:
    assert eventloop.run(_loop_type()) is uvloop.Loop


def test_runs_on_asyncio_when_asked() -> None:
    assert not issubclass(eventloop.run(_loop_type(), use_uvloop=False), uvloop.Loop)

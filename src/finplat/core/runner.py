"""Run a service until SIGINT or SIGTERM, then let it stop cleanly."""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def run_until_signalled(service: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Start `service(stop)`; the first SIGINT/SIGTERM sets `stop`, the service shuts down."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signum: int) -> None:
        logger.info("stopping on %s", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, request_stop, signum)
    try:
        await service(stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)

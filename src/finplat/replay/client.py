"""One WebSocket client of the replay server: its subscriptions and a bounded send queue."""

import asyncio
import logging
from collections import deque

from websockets.asyncio.server import ServerConnection

from finplat.replay.frames import combined

logger = logging.getLogger(__name__)


class Client:
    """One WebSocket client: its subscriptions and a bounded queue of frames to send."""

    def __init__(self, ws: ServerConnection, streams: set[str], combined_: bool, size: int) -> None:
        self.ws = ws
        self.streams = streams
        self.combined = combined_
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(size)
        self.control_times: deque[float] = deque()
        self.detached = False

    def wants(self, stream: str) -> bool:
        return not self.detached and stream in self.streams

    def detach(self) -> None:
        """The connection is gone: free a market waiting for room in the queue."""
        self.detached = True
        while not self.queue.empty():
            self.queue.get_nowait()

    async def deliver(self, stream: str, payload: bytes, *, wait: bool) -> None:
        frame = combined(stream, payload) if self.combined else payload
        if wait:
            await self.queue.put(frame)
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            logger.warning(
                "slow client disconnected", extra={"client": str(self.ws.remote_address)}
            )
            self.abort()

    def inject(self, frame: bytes) -> None:
        self.queue.put_nowait(frame)

    def abort(self) -> None:
        self.ws.transport.abort()

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

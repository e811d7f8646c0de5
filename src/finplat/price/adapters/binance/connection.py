"""One group of streams kept flowing over one WebSocket: connect, subscribe, read, recover.

* Connecting waits for the shared connection limiter (Binance: 300 per 5 min per IP), then
  names up to `streams_in_url` streams in the URL and subscribes to the rest with SUBSCRIBE
  messages, spaced by the per-connection control limiter (Binance: 5 messages/s), and waits
  for their acknowledgements. A reconnect does the same, which resubscribes everything.
* Failures (refused, dropped, stalled) are retried forever with capped, jittered backoff.
  A connection that lived `retry.reset_after_s` was healthy: after it ends we reconnect at
  once and the attempt counter starts over; one that died sooner is retried after a pause,
  so a server that accepts and drops at once is not hammered.
* Rollover: before Binance's 24 h cut-off (`rollover_after_s`), or when the server announces
  a shutdown, a new connection is opened and subscribed while the old one keeps reading;
  only then is the old one closed. The overlap delivers some events twice; the feed's
  de-duplicator drops them, so there is neither a gap nor a duplicate.
* Ping frames from Binance are answered by the websockets library itself (pong with the
  ping's payload, as Binance requires); our own keepalive pings detect dead TCP.
"""

import asyncio
import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, WebSocketException

from finplat.binance.streams import Stream, combined_url
from finplat.binance.wire import (
    ControlError,
    ControlReply,
    ControlRequest,
    Frame,
    ServerShutdown,
    encoder,
)
from finplat.core.clock import Clock
from finplat.core.retry import Backoff
from finplat.price.adapters.binance.limits import SlidingWindowLimiter
from finplat.price.adapters.binance.settings import FeedSettings

logger = logging.getLogger(__name__)

FrameHandler = Callable[[bytes], Awaitable[Frame | None]]
_CONNECT_ERRORS = (OSError, TimeoutError, WebSocketException)


class StreamGroup:
    """Keeps one connection's worth of streams flowing until cancelled."""

    def __init__(
        self,
        name: str,
        streams: Sequence[Stream],
        settings: FeedSettings,
        *,
        on_frame: FrameHandler,
        connection_limiter: SlidingWindowLimiter,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.name = name
        self._streams = tuple(streams)
        self._settings = settings
        self._on_frame = on_frame
        self._connection_limiter = connection_limiter
        self._clock = clock
        self._backoff = Backoff(settings.retry, rng)
        self._ids = itertools.count(1)
        self._rollover_now = asyncio.Event()
        self.connects = 0
        self.reconnects = 0
        self.rollovers = 0
        self.stalls = 0
        self.control_errors = 0

    async def run(self) -> None:
        ws = await self._connect()
        try:
            while True:
                ws = await self._serve(ws)
        finally:
            await ws.close()

    async def _serve(self, ws: ClientConnection) -> ClientConnection:
        """Read `ws` until it ends or is due for rollover; return the connection to use next."""
        started = self._clock.monotonic()
        self._rollover_now.clear()
        reader = asyncio.create_task(self._read(ws), name=f"{self.name}-reader")
        rollover = asyncio.create_task(self._rollover_due(), name=f"{self.name}-rollover")
        try:
            await asyncio.wait({reader, rollover}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                self.reconnects += 1
                if self._clock.monotonic() - started >= self._settings.retry.reset_after_s:
                    self._backoff.reset()  # it was healthy: come back at once
                else:
                    await self._pause("connection lost soon after opening")
                return await self._connect()
            new_ws = await self._connect()  # the old connection keeps reading meanwhile
            self.rollovers += 1
            logger.info("rolled over to a new connection", extra={"group": self.name})
            await ws.close()
            await reader
            return new_ws
        finally:
            for task in (reader, rollover):
                task.cancel()
            await asyncio.gather(reader, rollover, return_exceptions=True)

    async def _rollover_due(self) -> None:
        sleeper = asyncio.create_task(self._clock.sleep(self._settings.rollover_after_s))
        shutdown = asyncio.create_task(self._rollover_now.wait())
        try:
            await asyncio.wait({sleeper, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, shutdown):
                task.cancel()
            await asyncio.gather(sleeper, shutdown, return_exceptions=True)

    async def _read(self, ws: ClientConnection) -> None:
        stall_s = self._settings.stall_timeout_s
        watch = _StallWatch(stall_s)
        try:
            while True:
                watch.waiting()
                raw = await ws.recv(decode=False)
                watch.received()
                await self._dispatch(await self._on_frame(raw))
        except asyncio.CancelledError:
            if not watch.fired:
                raise
            watch.absorb()
            self.stalls += 1
            logger.warning(
                "no frame received, reconnecting", extra={"group": self.name, "stall_s": stall_s}
            )
            await ws.close(code=1001, reason="stalled")
        except ConnectionClosed as exc:
            # A clean close is ours (rollover, shutdown); anything else is a lost connection.
            level = logging.INFO if isinstance(exc, ConnectionClosedOK) else logging.WARNING
            code = exc.rcvd.code if exc.rcvd else None
            logger.log(level, "connection closed", extra={"group": self.name, "code": code})
        finally:
            watch.stop()

    async def _dispatch(self, frame: Frame | None) -> None:
        if isinstance(frame, ServerShutdown):
            logger.info("server announced shutdown, rolling over", extra={"group": self.name})
            self._rollover_now.set()
        elif isinstance(frame, ControlError):
            self.control_errors += 1
            logger.error(
                "control message refused",
                extra={"group": self.name, "code": frame.code, "msg": frame.msg, "id": frame.id},
            )

    async def _connect(self) -> ClientConnection:
        """Open and subscribe a connection, retrying with backoff until it works."""
        while True:
            try:
                ws = await self._open()
            except _CONNECT_ERRORS as exc:
                await self._pause(f"connection failed: {exc!r}")
            else:
                self.connects += 1
                return ws

    async def _pause(self, reason: str) -> None:
        delay = self._backoff.next_delay_s()
        logger.warning(
            "reconnecting after a pause",
            extra={"group": self.name, "reason": reason, "retry_in_s": round(delay, 3)},
        )
        await self._clock.sleep(delay)

    async def _open(self) -> ClientConnection:
        await self._connection_limiter.acquire()
        settings = self._settings
        in_url = self._streams[: settings.streams_in_url]
        ws = await websockets.connect(
            combined_url(settings.ws_base_url, in_url),
            open_timeout=settings.open_timeout_s,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_timeout_s,
            close_timeout=2.0,
            max_size=settings.max_frame_bytes,
        )
        try:
            await self._subscribe(ws, self._streams[settings.streams_in_url :])
        except BaseException:
            await ws.close()
            raise
        logger.info("connected", extra={"group": self.name, "streams": len(self._streams)})
        return ws

    async def _subscribe(self, ws: ClientConnection, streams: Sequence[Stream]) -> None:
        """SUBSCRIBE in batches within the control-message limit; wait for every answer."""
        if not streams:
            return
        limiter = SlidingWindowLimiter(self._settings.control_messages_per_s, 1.0, self._clock)
        pending: set[int] = set()
        size = self._settings.subscribe_batch_size
        for i in range(0, len(streams), size):
            request_id = next(self._ids)
            params = [stream.name for stream in streams[i : i + size]]
            await limiter.acquire()
            await ws.send(
                encoder.encode(ControlRequest("SUBSCRIBE", request_id, params)), text=True
            )
            pending.add(request_id)
        # Data of the streams in the URL may come first: it goes through the normal path.
        async with asyncio.timeout(self._settings.subscribe_timeout_s):
            while pending:
                frame = await self._on_frame(await ws.recv(decode=False))
                if isinstance(frame, ControlReply | ControlError) and frame.id in pending:
                    pending.discard(frame.id)
                await self._dispatch(frame)


class _StallWatch:
    """Cancels the reading task once it has waited `stall_s` for a frame (None: never).

    Why not `asyncio.timeout` around each `recv`: that schedules and cancels a timer per frame,
    11% of the price service's time at full rate (issue #18). One timer, re-armed from when the
    reader began to wait, sees the same silence for the cost of reading the loop's clock.
    """

    def __init__(self, stall_s: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "a stall watch runs inside the reading task"
        self._task = task
        # When the reader began to wait for the next frame; None while it handles one (a REST
        # backfill may take longer than `stall_s`, and is no silence of the server's).
        self._waiting_since: float | None = None
        self.fired = False
        self._stall_s = stall_s
        self._timer = None if stall_s is None else self._loop.call_later(stall_s, self._check)

    def waiting(self) -> None:
        self._waiting_since = self._loop.time()

    def received(self) -> None:
        self._waiting_since = None

    def absorb(self) -> None:
        """Take back the cancellation this watch made, once the reader has caught it."""
        self._task.uncancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _check(self) -> None:
        assert self._stall_s is not None, "armed only with a stall timeout"
        since, now = self._waiting_since, self._loop.time()
        if since is not None and now - since >= self._stall_s:
            self.fired = True
            self._task.cancel()
            return
        again = (now if since is None else since) + self._stall_s
        self._timer = self._loop.call_at(again, self._check)

"""Fan-out of one shared `PriceService.StreamPrices` call to every WebSocket client.

Why one shared upstream call and not one per client: the benchmark case is 1,000 clients on a
1,000 updates/s stream. One call per client would make the gateway receive and decode a million
messages a second; one shared call decodes each update once, encodes its JSON once, and hands
the same string to every interested client. The call runs while at least one client is
subscribed and is cancelled when the last one leaves, so a client going away does cancel the
gRPC stream it caused.

Clients are grouped by (symbols, batched): an update is encoded once and appended once per
group, not per client. Batched groups are flushed every interval as one JSON array frame, built
once per group; that is what keeps a thousand clients at a thousand updates a second from
becoming a million WebSocket frames a second. Handing a frame to a client never blocks: each
client has a bounded queue, and a client that lets it fill is dropped (see `ClientQueue`).

When the upstream call fails, it is opened again on the next price-service instance (with
several addresses; the same one otherwise) with `resume_after` set to the last update relayed
of each symbol, so that the new call starts with what was missed meanwhile. A refused position
(OUT_OF_RANGE: too far back; INVALID_ARGUMENT: a service that cannot take it) is dropped and
the call opened live, the clients told that updates were missed.
"""

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import json_format, message

from finance.market.v1 import market_pb2, price_service_pb2
from finplat.core.retry import Backoff, RetryPolicy
from finplat.gateway.service.metrics import GatewayMetrics

logger = logging.getLogger(__name__)

ALL_SYMBOLS = "*"
StreamCall = grpc.aio.UnaryStreamCall[message.Message, message.Message]
OpenStream = Callable[[price_service_pb2.StreamPricesRequest], StreamCall]
# A refused resume position: open the call again live, without it.
_POSITION_REFUSED = frozenset({grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.INVALID_ARGUMENT})
# Waits between reopenings of the upstream call; a call that delivered updates starts over.
_UPSTREAM_RETRY = RetryPolicy(initial_s=0.2, max_s=10.0, multiplier=2, jitter=0.5)


class ClientQueue:
    """Frames waiting for one client. `offer` never blocks; overflowing marks the client dropped."""

    def __init__(self, max_frames: int) -> None:
        self.frames: deque[str] = deque()
        self.max_frames = max_frames
        self.ready = asyncio.Event()
        self.dropped = asyncio.Event()

    def offer(self, frame: str) -> None:
        if self.dropped.is_set():
            return
        if len(self.frames) >= self.max_frames:
            # The client cannot keep up: free its backlog now, the session closes it.
            self.frames.clear()
            self.dropped.set()
            return
        self.frames.append(frame)
        self.ready.set()


@dataclass(eq=False)
class _Group:
    symbols: frozenset[str]
    batched: bool
    members: set[ClientQueue] = field(default_factory=set)
    pending: list[str] = field(default_factory=list)


def encode_update(update: market_pb2.PriceUpdate) -> str:
    """The JSON frame of one update: the original message's field names (`symbol`, `price`,
    `timestamp`, `volume`, `service`, then the newer ones), epoch milliseconds as numbers."""
    fields = json_format.MessageToDict(
        update,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


class PriceFanout:
    def __init__(
        self,
        upstreams: Callable[[], Sequence[OpenStream]],
        *,
        batch_interval_s: float,
        ping_interval_s: float,
        metrics: GatewayMetrics,
    ) -> None:
        self._upstreams = upstreams
        """StreamPrices on each price-service instance, tried in turn."""
        self._current = 0
        # symbol -> the last update relayed: where a reopened call resumes.
        self._last: dict[str, market_pb2.PriceUpdate] = {}
        self._batch_interval_s = batch_interval_s
        self._ping_interval_s = ping_interval_s
        self._metrics = metrics
        self._groups: dict[tuple[frozenset[str], bool], _Group] = {}
        self._membership: dict[ClientQueue, _Group] = {}
        self._clients: set[ClientQueue] = set()
        self._by_symbol: dict[str, list[_Group]] = {}
        self._everything: list[_Group] = []
        self._demand = asyncio.Event()
        self._call: StreamCall | None = None

    # -- clients ---------------------------------------------------------------------------

    def connect(self, client: ClientQueue) -> None:
        self._clients.add(client)

    def disconnect(self, client: ClientQueue) -> None:
        self._clients.discard(client)
        self.subscribe(client, frozenset(), batched=False)

    def subscribe(self, client: ClientQueue, symbols: frozenset[str], *, batched: bool) -> None:
        """Make `symbols` the client's whole subscription (empty: none, `*`: every symbol)."""
        old = self._membership.pop(client, None)
        if old is not None:
            old.members.discard(client)
            if not old.members:
                del self._groups[(old.symbols, old.batched)]
        if symbols:
            key = (symbols, batched)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(symbols, batched)
            group.members.add(client)
            self._membership[client] = group
        self._reindex()

    def _reindex(self) -> None:
        by_symbol: dict[str, list[_Group]] = {}
        everything: list[_Group] = []
        for group in self._groups.values():
            if ALL_SYMBOLS in group.symbols:
                everything.append(group)
                continue
            for symbol in group.symbols:
                by_symbol.setdefault(symbol, []).append(group)
        self._by_symbol, self._everything = by_symbol, everything
        if self._groups:
            self._demand.set()
        else:
            self._demand.clear()
            if self._call is not None:
                self._call.cancel()  # the last subscriber left: stop the upstream stream

    # -- fan-out ---------------------------------------------------------------------------

    def publish(self, update: market_pb2.PriceUpdate) -> None:
        self._last[update.symbol] = update
        groups = self._by_symbol.get(update.symbol, ())
        if not groups and not self._everything:
            return
        frame = encode_update(update)
        for group in (*groups, *self._everything):
            if group.batched:
                group.pending.append(frame)
            else:
                for client in group.members:
                    client.offer(frame)

    def flush(self) -> None:
        """Send each batched group's pending updates as one JSON array frame."""
        for group in self._groups.values():
            if group.batched and group.pending:
                frame = "[" + ",".join(group.pending) + "]"
                group.pending = []
                for client in group.members:
                    client.offer(frame)

    def ping(self) -> None:
        self._broadcast({"type": "ping", "time": int(time.time() * 1000)})

    def notice(self, message: str) -> None:
        self._broadcast({"type": "error", "message": message})

    def _broadcast(self, value: dict[str, object]) -> None:
        frame = json.dumps(value, separators=(",", ":"))
        for client in self._clients:
            client.offer(frame)

    # -- background work, owned by the app's lifespan ----------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._pump())
            tasks.create_task(self._every(self._batch_interval_s, self.flush))
            tasks.create_task(self._every(self._ping_interval_s, self.ping))

    @staticmethod
    async def _every(interval_s: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            action()

    async def _pump(self) -> None:
        backoff = Backoff(_UPSTREAM_RETRY)
        while True:
            await self._demand.wait()
            received = await self._relay_once()
            if not self._demand.is_set():
                # Stopped on purpose: the next subscriber starts live, not with a replay.
                self._last.clear()
                continue
            # Tell subscribers the stream broke; the resumed call fills what they missed.
            self.notice("price stream interrupted; reconnecting")
            if received:
                backoff.reset()
            self._metrics.upstream_stream_restarts.inc()
            # On to the next instance: this one may be gone for good.
            self._current += 1
            await asyncio.sleep(backoff.next_delay_s())

    async def _relay_once(self) -> bool:
        """Relay one upstream call until it ends; whether it delivered anything."""
        upstreams = self._upstreams()
        positions = list(self._last.values())
        request = price_service_pb2.StreamPricesRequest(resume_after=positions)
        call = self._call = upstreams[self._current % len(upstreams)](request)
        received = False
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    logger.warning("price stream ended; reopening")
                    return received
                received = True
                # The service batches updates that queued up while a message was in flight.
                for update in response.prices:  # type: ignore[attr-defined]
                    self.publish(update)
        except grpc.aio.AioRpcError as exc:
            logger.warning("price stream failed: %s %s", exc.code().name, exc.details())
            if positions and exc.code() in _POSITION_REFUSED:
                self._last.clear()
                self.notice("price stream could not resume; updates were missed")
            return received
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the hub itself is stopping
            return received  # we cancelled the call: nobody is subscribed any more
        finally:
            self._call = None
            call.cancel()

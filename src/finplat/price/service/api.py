"""PriceService over gRPC: latest prices from the price store, candles, the live stream."""

import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf import message_factory
from typing_extensions import override

from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc
from finplat.core.clock import Clock
from finplat.market.symbols import is_symbol
from finplat.price.adapters.errors import StoreUnavailableError
from finplat.price.service.candle_query import (
    CandleStore,
    InvalidCandleRequestError,
    query_candles,
    validate,
)
from finplat.price.service.resume import (
    InvalidPositionError,
    PositionOutOfRangeError,
    Resume,
    positions_of,
)
from finplat.price.service.stream_hub import (
    SlowSubscriberError,
    StreamHub,
    Subscription,
    encode_element,
)

logger = logging.getLogger(__name__)

_SERVICE = price_service_pb2.DESCRIPTOR.services_by_name["PriceService"]
SERVICE_NAME = _SERVICE.full_name
Context = grpc.aio.ServicerContext[object, object]


class LatestPrices(Protocol):
    """What the API needs of the latest-price store."""

    async def get(self, symbol: str) -> market_pb2.PriceUpdate | None:
        """The latest update of one symbol."""
        ...

    async def list(self, symbols: Sequence[str] = ()) -> list[market_pb2.PriceUpdate]:
        """The latest updates of several symbols."""
        ...


class ReplaySource(Protocol):
    """Where a resumed stream's missed updates are read (the Kafka topic)."""

    async def read(self, collector: Resume, timeout_s: float) -> frozenset[int]:
        """Feed `collector` the updates of its symbols from its time on, until it is settled;
        the partitions where Kafka had deleted updates the read wanted."""
        ...


@dataclass(frozen=True)
class Resumption:
    """How StreamPrices resumes a client from the positions it passes back."""

    replay: ReplaySource
    ingested: frozenset[str]
    """The symbols this instance ingests: its hub has their updates before Kafka does."""
    timeout_s: float
    """Longest the Kafka read of a resumed stream may take."""
    limit: int
    """Most updates one replay holds; a position further back is refused."""


async def _symbol(raw: str, context: Context) -> str:
    symbol = raw.strip().upper()
    if not is_symbol(symbol):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"symbol must be 1-32 letters or digits, like BTCUSDT; got {raw!r}",
        )
    return symbol


class PriceServicer(price_service_pb2_grpc.PriceServiceServicer):
    """The gRPC face of the price service; every dependency is passed in."""

    def __init__(
        self,
        prices: LatestPrices,
        candles: CandleStore,
        hub: StreamHub,
        clock: Clock,
        tracked_symbols: Collection[str],
        stored_intervals: Collection[str],
        resumption: Resumption,
    ) -> None:
        self._resumption = resumption
        self._prices = prices
        self._candles = candles
        self._hub = hub
        self._clock = clock
        self._tracked = frozenset(tracked_symbols)
        self._stored_intervals = frozenset(stored_intervals)

    async def _not_tracked(self, symbol: str, context: Context) -> None:
        tracked = ", ".join(sorted(self._tracked)) or "none"
        await context.abort(
            grpc.StatusCode.NOT_FOUND, f"symbol {symbol} is not tracked (tracked: {tracked})"
        )

    @override
    async def GetPrice(
        self,
        request: price_service_pb2.GetPriceRequest,
        context: Context,
    ) -> price_service_pb2.GetPriceResponse:
        symbol = await _symbol(request.symbol, context)
        try:
            update = await self._prices.get(symbol)
        except StoreUnavailableError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"price store unavailable: {exc}")
        if update is None:
            if symbol not in self._tracked:
                await self._not_tracked(symbol, context)
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no price received for {symbol} yet")
        return price_service_pb2.GetPriceResponse(price=update)

    @override
    async def ListPrices(
        self,
        request: price_service_pb2.ListPricesRequest,
        context: Context,
    ) -> price_service_pb2.ListPricesResponse:
        symbols = [await _symbol(raw, context) for raw in request.symbols]
        try:
            updates = await self._prices.list(symbols)
        except StoreUnavailableError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"price store unavailable: {exc}")
        return price_service_pb2.ListPricesResponse(prices=updates)

    @override
    async def GetCandles(
        self,
        request: price_service_pb2.GetCandlesRequest,
        context: Context,
    ) -> price_service_pb2.GetCandlesResponse:
        try:
            query = validate(request)
        except InvalidCandleRequestError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await _symbol(query.symbol, context)
        if query.symbol not in self._tracked:
            await self._not_tracked(query.symbol, context)
        try:
            candles = await query_candles(
                self._candles, query, self._stored_intervals, self._clock.time_ms()
            )
        except StoreUnavailableError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"candle store unavailable: {exc}")
        return price_service_pb2.GetCandlesResponse(candles=candles)

    @override
    async def StreamPrices(
        self,
        request: price_service_pb2.StreamPricesRequest,
        context: Context,
    ) -> AsyncIterator[price_service_pb2.StreamPricesResponse]:
        """The stream as messages, for a server set up by the generated `add_..._to_server`;
        `add_price_service` serves `stream_prices_encoded` instead, without decoding."""
        async for message in self.stream_prices_encoded(request, context):
            yield price_service_pb2.StreamPricesResponse.FromString(message)

    async def stream_prices_encoded(
        self,
        request: price_service_pb2.StreamPricesRequest,
        context: Context,
    ) -> AsyncIterator[bytes]:
        """StreamPrices with each message already encoded: the hub encodes every update once
        for all subscribers, and a message is a join of those bytes."""
        symbols = [await _symbol(raw, context) for raw in request.symbols]
        try:
            positions = positions_of(
                request.resume_after, frozenset(symbols), self._clock.time_ms()
            )
        except InvalidPositionError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except PositionOutOfRangeError as exc:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
        # Subscribed before the replay is read, so nothing falls between the two.
        with self._hub.subscribe(symbols) as subscription:
            try:
                if positions:
                    async for message in self._resumed(subscription, positions, context):
                        yield message
                async for message in subscription.messages():
                    yield message
            except SlowSubscriberError as exc:
                logger.warning("stream subscriber cut off: %s", exc, extra={"peer": context.peer()})
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    async def _resumed(
        self,
        subscription: Subscription,
        positions: Mapping[str, market_pb2.PriceUpdate],
        context: Context,
    ) -> AsyncIterator[bytes]:
        """The replay after `positions`, then the subscription's updates less those the client
        already has, until every resumed symbol is live (see resume.py)."""
        resumption = self._resumption
        # Taken in the same step as the subscription: everything later is in the subscription.
        awaited = {
            symbol: last
            for symbol in positions
            if symbol in resumption.ingested and (last := self._hub.last(symbol)) is not None
        }
        resume = Resume(positions, awaited, resumption.limit)
        try:
            truncated = await resumption.replay.read(resume, resumption.timeout_s)
            replay = resume.finish(truncated)
        except PositionOutOfRangeError as exc:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
        except StoreUnavailableError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot resume: {exc}")
        logger.info(
            "stream resumed",
            extra={"peer": context.peer(), "symbols": sorted(positions), "replayed": len(replay)},
        )
        size = self._hub.max_batch
        for start in range(0, len(replay), size):
            yield b"".join(encode_element(update) for update in replay[start : start + size])
        while not resume.done:
            updates, elements = await subscription.next_entries()
            kept = [e for u, e in zip(updates, elements, strict=True) if resume.live(u)]
            if kept:
                yield b"".join(kept)


def add_price_service(servicer: PriceServicer, server: grpc.aio.Server) -> None:
    """Register `servicer` on `server` as the generated code would, except that StreamPrices
    writes the hub's encoded messages as they are (no response serializer). Clients see the
    same service; the handlers come from the service descriptor, so a new RPC is served too."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in _SERVICE.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        behaviour: Any = getattr(servicer, method.name)
        serializer: Callable[[Any], bytes] | None = response.SerializeToString
        if method.name == "StreamPrices":
            behaviour, serializer = servicer.stream_prices_encoded, None
        factory = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = factory(
            behaviour, request_deserializer=request.FromString, response_serializer=serializer
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)

"""PriceService over gRPC: latest prices from the price store, candles, the live stream."""

import logging
import re
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any, Protocol

import grpc
from typing_extensions import override

from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc
from finplat.price.adapters.errors import StoreUnavailableError
from finplat.price.candle_query import (
    CandleStore,
    InvalidCandleRequestError,
    query_candles,
    validate,
)
from finplat.price.clock import Clock
from finplat.price.hub import PriceHub, SlowSubscriberError

logger = logging.getLogger(__name__)

SERVICE_NAME = price_service_pb2.DESCRIPTOR.services_by_name["PriceService"].full_name
_SYMBOL = re.compile(r"^[A-Z0-9]{1,32}$")
Context = grpc.aio.ServicerContext[object, object]


class LatestPrices(Protocol):
    """What the API needs of the latest-price store."""

    async def get(self, symbol: str) -> market_pb2.PriceUpdate | None:
        """The latest update of one symbol."""
        ...

    async def list(self, symbols: Sequence[str] = ()) -> list[market_pb2.PriceUpdate]:
        """The latest updates of several symbols."""
        ...


async def _symbol(raw: str, context: Context) -> str:
    symbol = raw.strip().upper()
    if not _SYMBOL.match(symbol):
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
        hub: PriceHub,
        clock: Clock,
        tracked_symbols: Collection[str],
        stored_intervals: Collection[str],
    ) -> None:
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
        with self._hub.subscribe(symbols) as subscription:
            try:
                async for message in subscription.messages():
                    yield message
            except SlowSubscriberError as exc:
                logger.warning("stream subscriber cut off: %s", exc, extra={"peer": context.peer()})
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))


def add_price_service(servicer: PriceServicer, server: grpc.aio.Server) -> None:
    """Register `servicer` on `server`: the generated handlers, but StreamPrices writes the
    hub's encoded messages as they are (no response serializer). Clients see the same service."""
    pb2 = price_service_pb2
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "GetPrice": grpc.unary_unary_rpc_method_handler(
            servicer.GetPrice,
            request_deserializer=pb2.GetPriceRequest.FromString,
            response_serializer=pb2.GetPriceResponse.SerializeToString,
        ),
        "ListPrices": grpc.unary_unary_rpc_method_handler(
            servicer.ListPrices,
            request_deserializer=pb2.ListPricesRequest.FromString,
            response_serializer=pb2.ListPricesResponse.SerializeToString,
        ),
        "GetCandles": grpc.unary_unary_rpc_method_handler(
            servicer.GetCandles,
            request_deserializer=pb2.GetCandlesRequest.FromString,
            response_serializer=pb2.GetCandlesResponse.SerializeToString,
        ),
        "StreamPrices": grpc.unary_stream_rpc_method_handler(
            servicer.stream_prices_encoded,
            request_deserializer=pb2.StreamPricesRequest.FromString,
            response_serializer=None,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)

"""Fake upstream services: real grpc.aio servicers with scripted answers, for the gateway tests."""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]
from google.longrunning import operations_pb2, operations_pb2_grpc  # type: ignore[import-untyped]
from google.protobuf import any_pb2, descriptor, empty_pb2, message, message_factory
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc

Metadata = tuple[tuple[str, str | bytes], ...]


def price(symbol: str, value: str = "67012.34000000", timestamp: int = 1_700_000_000_000) -> Any:
    return market_pb2.PriceUpdate(
        symbol=symbol,
        price=value,
        timestamp=timestamp,
        volume="0.5",
        service="price-service",
        kind=market_pb2.EVENT_KIND_TRADE,
        event_id="42",
        exchange="binance",
        receive_timestamp=timestamp + 3,
    )


@dataclass
class Recorder:
    """What the fakes saw: requests and invocation metadata, newest last."""

    requests: list[Any] = field(default_factory=list)
    metadata: list[dict[str, str | bytes]] = field(default_factory=list)

    def record(self, request: message.Message, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata() or ()))


class FakePriceService(price_service_pb2_grpc.PriceServiceServicer):
    """Prices of BTCUSDT and ETHUSDT; StreamPrices relays what `publish` is given."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.prices = {s: price(s) for s in ("BTCUSDT", "ETHUSDT")}
        self.stream_script: list[Any] | None = None  # PriceUpdates then maybe a StatusCode
        self._subscribers: set[asyncio.Queue[Any]] = set()
        self.streams_opened = 0
        self.streams_cancelled = asyncio.Event()
        self._streams_changed = asyncio.Event()

    @property
    def active_streams(self) -> int:
        return len(self._subscribers)

    async def wait_for_opened(self, count: int) -> None:
        """Until StreamPrices has been called `count` times in all."""
        while self.streams_opened < count:
            self._streams_changed.clear()
            await self._streams_changed.wait()

    async def wait_for_streams(self, count: int) -> None:
        """Until exactly `count` live StreamPrices calls are open."""
        while self.active_streams != count:
            self._streams_changed.clear()
            await self._streams_changed.wait()

    def publish(self, update: Any) -> None:
        """Send a PriceUpdate to every live stream; a StatusCode fails them instead."""
        for queue in self._subscribers:
            queue.put_nowait(update)

    async def GetPrice(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        await context.send_initial_metadata((("x-served-by", "fake-price"),))
        context.set_trailing_metadata((("x-price-source", "memory"),))
        found = self.prices.get(request.symbol.upper())
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no price for {request.symbol}")
        return price_service_pb2.GetPriceResponse(price=found)

    async def ListPrices(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        wanted = set(request.symbols) or set(self.prices)
        return price_service_pb2.ListPricesResponse(
            prices=[p for s, p in sorted(self.prices.items()) if s in wanted]
        )

    async def GetCandles(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        candle = market_pb2.Candle(symbol=request.symbol, interval=market_pb2.INTERVAL_1M)
        return price_service_pb2.GetCandlesResponse(
            candles=[candle] * max(0, min(request.limit, 3))
        )

    async def StreamPrices(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        self.streams_opened += 1
        self._streams_changed.set()
        if self.stream_script is not None:
            for item in self.stream_script:
                if isinstance(item, grpc.StatusCode):
                    await context.abort(item, "stream failed")
                yield price_service_pb2.StreamPricesResponse(prices=[item])
            return
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscribers.add(queue)
        self._streams_changed.set()
        try:
            while True:
                update = await queue.get()
                if isinstance(update, grpc.StatusCode):
                    await context.abort(update, "stream failed")
                if not request.symbols or update.symbol in request.symbols:
                    yield price_service_pb2.StreamPricesResponse(prices=[update])
        finally:
            self._subscribers.discard(queue)
            self._streams_changed.set()
            self.streams_cancelled.set()


class FakeBacktestService(backtest_service_pb2_grpc.BacktestServiceServicer):
    """Echoes requests into plausible responses; backtest "known" exists, others do not."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def GetStats(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        stats = backtest_pb2.SymbolStats(symbol="BTCUSDT", count=3, last_price="1.5")
        return backtest_service_pb2.GetStatsResponse(total_messages=3, symbols=[stats])

    async def ListStrategies(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        fast = backtest_pb2.ParameterSpec(name="fast", type=backtest_pb2.PARAMETER_TYPE_INT)
        strategy = backtest_pb2.Strategy(name="sma_crossover", parameters=[fast])
        return backtest_service_pb2.ListStrategiesResponse(strategies=[strategy])

    async def RunBacktest(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        run = backtest_pb2.Backtest(
            id="run-1",
            strategy=request.strategy,
            parameters=request.parameters,
            data=request.data,
            config=request.config,
        )
        return backtest_service_pb2.RunBacktestResponse(backtest=run)

    async def GetBacktest(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        if request.id != "known":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no backtest {request.id}")
        return backtest_service_pb2.GetBacktestResponse(backtest=backtest_pb2.Backtest(id="known"))

    async def GetBacktestChart(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        if request.id != "known":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no backtest {request.id}")
        chart = httpbody_pb2.HttpBody(content_type="text/html; charset=utf-8", data=CHART_PAGE)
        return backtest_service_pb2.GetBacktestChartResponse(chart=chart)

    async def ListBacktests(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        return backtest_service_pb2.ListBacktestsResponse(next_page_token=request.page_token)

    async def RunSweep(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        sweep = backtest_pb2.Sweep(id="sweep-1", strategy=request.strategy, rank_by=request.rank_by)
        return backtest_service_pb2.RunSweepResponse(sweep=sweep)

    async def ExportBacktest(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        csv = httpbody_pb2.HttpBody(content_type="text/csv", data=EXPORTED_CSV)
        return backtest_service_pb2.ExportBacktestResponse(file=csv)

    async def ExportSweep(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        csv = httpbody_pb2.HttpBody(content_type="text/csv", data=EXPORTED_CSV)
        return backtest_service_pb2.ExportSweepResponse(file=csv)

    async def DownloadSweepTable(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        if request.id not in ("known", "breaks"):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no sweep with id {request.id!r}")
        for piece in DOWNLOADED_PIECES:
            yield httpbody_pb2.HttpBody(content_type="text/csv", data=piece)
            if request.id == "breaks":
                await context.abort(grpc.StatusCode.INTERNAL, "results store: disk I/O error")

    async def CheckLookahead(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        return backtest_service_pb2.CheckLookaheadResponse(clean=True, bar_count=1440)

    async def RunPortfolio(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        portfolio = backtest_pb2.Portfolio(strategy=request.strategy, symbols=request.symbols)
        return backtest_service_pb2.RunPortfolioResponse(portfolio=portfolio)

    async def StartSweep(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        return _operation("operations/sweep-1", done=False)

    async def GetWalkForward(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        if request.id != "known":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no walk-forward {request.id}")
        found = backtest_service_pb2.WalkForward(id="known")
        return backtest_service_pb2.GetWalkForwardResponse(walk_forward=found)

    async def ExportWalkForward(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        csv = httpbody_pb2.HttpBody(content_type="text/csv", data=EXPORTED_CSV)
        return backtest_service_pb2.ExportWalkForwardResponse(file=csv)

    async def StartWalkForward(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        return _operation("operations/walk-1", done=False)

    async def WatchOperation(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        if request.name != "operations/known":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no operation {request.name}")
        yield _operation(request.name, done=False)
        yield _operation(request.name, done=True)


def _operation(name: str, done: bool) -> Any:
    operation = operations_pb2.Operation(name=name, done=done)
    operation.metadata.Pack(backtest_service_pb2.SweepProgress(done_combinations=int(done)))
    return operation


class FakeOperations(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    """google.longrunning.Operations with one operation, "operations/known"."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def _known(self, request: Any, context: Any) -> None:
        self.recorder.record(request, context)
        if request.name != "operations/known":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no operation {request.name}")

    async def GetOperation(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        await self._known(request, context)
        return _operation(request.name, done=True)

    async def ListOperations(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.recorder.record(request, context)
        if request.page_size < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_size must be >= 0")
        known = _operation("operations/known", done=True)
        return operations_pb2.ListOperationsResponse(operations=[known])

    async def CancelOperation(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        await self._known(request, context)
        return empty_pb2.Empty()

    async def DeleteOperation(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        await self._known(request, context)
        return empty_pb2.Empty()

    async def WaitOperation(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        await self._known(request, context)
        return _operation(request.name, done=True)


CHART_PAGE = b"<!doctype html><title>known</title><svg></svg>"
# DownloadSweepTable's file, in the pieces it streams: bytes cut anywhere, not on rows.
DOWNLOADED_PIECES = (b'"fast","slow","sharpe"\n1,2,0.5\n1,', b"3,0.25\n")
EXPORTED_CSV = b'"time","equity","drawdown"\n2024-11-01 00:00:00Z,10000,0\n'


class FakeThingService:
    """The test proto's ThingService: echoes requests, fails, sleeps and streams on demand."""

    def __init__(self, service: descriptor.ServiceDescriptor, recorder: Recorder) -> None:
        self.service = service
        self.recorder = recorder

    def handler(self) -> grpc.GenericRpcHandler:
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for method in self.service.methods:
            request = message_factory.GetMessageClass(method.input_type)
            response = message_factory.GetMessageClass(method.output_type)
            if method.server_streaming:
                handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                    self._watch(response),
                    request_deserializer=request.FromString,
                    response_serializer=response.SerializeToString,
                )
            else:
                handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                    self._unary(method.name),
                    request_deserializer=request.FromString,
                    response_serializer=response.SerializeToString,
                )
        return grpc.method_handlers_generic_handler(self.service.full_name, handlers)

    def _unary(self, name: str) -> Callable[[Any, Any], Any]:
        async def call(request: Any, context: Any) -> Any:
            self.recorder.record(request, context)
            await context.send_initial_metadata((("x-rpc", name), ("x-blob-bin", b"\x00\x01")))
            context.set_trailing_metadata((("x-done", "yes"),))
            if name == "Fail":
                await _fail(request, context)
            if name == "Sleep":
                await asyncio.sleep(request.millis / 1000)
            return request

        return call

    def _watch(self, response: type[message.Message]) -> Callable[[Any, Any], Any]:
        async def watch(request: Any, context: Any) -> AsyncIterator[Any]:
            self.recorder.record(request, context)
            for seq in range(request.count):
                thing = {"name": f"things/{seq}", "i64": seq}
                yield response(thing=thing, seq=seq)
            if request.fail_code:
                await context.abort(grpc.StatusCode(_code(request.fail_code)), "watch failed")

        return watch


def _code(number: int) -> tuple[int, str]:
    return next(c.value for c in grpc.StatusCode if c.value[0] == number)


async def _fail(request: Any, context: Any) -> None:
    code = grpc.StatusCode(_code(request.code))
    trailing: Metadata = ()
    if request.with_details:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason="TOO_FAST", domain="finplat"))
        status = status_pb2.Status(code=request.code, message=request.message, details=[detail])
        trailing = (("grpc-status-details-bin", status.SerializeToString()),)
    await context.abort(code, request.message, trailing_metadata=trailing)


class FakeListingHealth(health.HealthServicer):  # type: ignore[misc]
    """grpcio's health servicer with the `List` call our services add (ListingHealthServicer)."""

    def List(  # noqa: N802 - the protocol's method name
        self, request: health_pb2.HealthListRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthListResponse:
        with self._lock:
            statuses = dict(self._server_status)
        return health_pb2.HealthListResponse(
            statuses={n: health_pb2.HealthCheckResponse(status=s) for n, s in statuses.items()}
        )


@dataclass
class FakeUpstream:
    server: grpc.aio.Server
    address: str
    health: FakeListingHealth
    price: FakePriceService
    backtest: FakeBacktestService
    operations: FakeOperations
    things: FakeThingService
    recorder: Recorder


async def start_fake_upstream(
    thing_service: descriptor.ServiceDescriptor,
    interceptors: Sequence[Any] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> FakeUpstream:
    """One grpc.aio server on a free loopback port hosting every fake and grpc.health.v1;
    with `credentials`, the port speaks TLS."""
    recorder = Recorder()
    server = grpc.aio.server(interceptors=list(interceptors))
    fakes = FakeUpstream(
        server=server,
        address="",
        health=FakeListingHealth(),
        price=FakePriceService(recorder),
        backtest=FakeBacktestService(recorder),
        operations=FakeOperations(recorder),
        things=FakeThingService(thing_service, recorder),
        recorder=recorder,
    )
    price_service_pb2_grpc.add_PriceServiceServicer_to_server(fakes.price, server)
    backtest_service_pb2_grpc.add_BacktestServiceServicer_to_server(fakes.backtest, server)
    operations_pb2_grpc.add_OperationsServicer_to_server(fakes.operations, server)
    server.add_generic_rpc_handlers((fakes.things.handler(),))
    health_pb2_grpc.add_HealthServicer_to_server(fakes.health, server)
    for name in (
        "finance.market.v1.PriceService",
        "finance.backtest.v1.BacktestService",
        "google.longrunning.Operations",
    ):
        fakes.health.set(name, health_pb2.HealthCheckResponse.SERVING)
    port = (
        server.add_insecure_port("127.0.0.1:0")
        if credentials is None
        else server.add_secure_port("127.0.0.1:0", credentials)
    )
    await server.start()
    fakes.address = f"127.0.0.1:{port}"
    return fakes

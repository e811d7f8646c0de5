"""PriceService over a real in-process gRPC server, with fake stores."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio

from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc
from finplat.core.clock import SystemClock
from finplat.core.grpc_server import ServiceBinding, start_server
from finplat.market.intervals import IntervalSpec
from finplat.price.adapters.errors import StoreUnavailableError
from finplat.price.service.api import (
    SERVICE_NAME,
    PriceServicer,
    Resumption,
    add_price_service,
)
from finplat.price.service.resume import Resume
from finplat.price.service.stream_hub import StreamHub

BTC = market_pb2.PriceUpdate(symbol="BTCUSDT", price="67012.34000000", timestamp=1, volume="0.1")


class FakeLatestPrices:
    """Latest prices in a dict; raises when `down`."""

    def __init__(self) -> None:
        self.prices = {"BTCUSDT": BTC}
        self.down = False

    async def get(self, symbol: str) -> market_pb2.PriceUpdate | None:
        if self.down:
            raise StoreUnavailableError("fake redis is down")
        return self.prices.get(symbol)

    async def list(self, symbols: Sequence[str] = ()) -> list[market_pb2.PriceUpdate]:
        return [self.prices[s] for s in sorted(symbols or self.prices) if s in self.prices]


class FakeCandleStore:
    """No candles at all."""

    async def last_open_time(self, symbol: str, interval: IntervalSpec) -> int | None:
        return None

    async def candles(
        self, symbol: str, interval: IntervalSpec, start_ms: int, stop_ms: int
    ) -> list[market_pb2.Candle]:
        return []


class FakeReplay:
    """A topic in a list, read at once; `during_read` runs in the middle of each read."""

    def __init__(self) -> None:
        self.topic: list[market_pb2.PriceUpdate] = []
        self.truncated: frozenset[int] = frozenset()
        self.during_read: Callable[[], None] = lambda: None
        self.down = False

    async def read(self, collector: Resume, timeout_s: float) -> frozenset[int]:
        if self.down:
            raise StoreUnavailableError("fake kafka is down")
        self.during_read()
        for update in self.topic:
            if update.symbol in collector.symbols:
                collector.add(update, 0)
        assert collector.settled()
        return self.truncated


@dataclass
class Harness:
    """The servicer on a real server, a client stub, and the fakes behind it."""

    stub: "price_service_pb2_grpc.PriceServiceAsyncStub"
    prices: FakeLatestPrices
    hub: StreamHub
    replay: FakeReplay


def _generated(servicer: PriceServicer, server: grpc.aio.Server) -> None:
    price_service_pb2_grpc.add_PriceServiceServicer_to_server(servicer, server)


# The service registers with `add_price_service` (StreamPrices writes pre-encoded messages);
# the generated registration must serve the same contract.
@pytest_asyncio.fixture(params=[add_price_service, _generated], ids=["encoded", "generated"])
async def service(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    prices = FakeLatestPrices()
    hub = StreamHub(queue_capacity=5)
    replay = FakeReplay()
    servicer = PriceServicer(
        prices,
        FakeCandleStore(),
        hub,
        SystemClock(),
        ["BTCUSDT", "ETHUSDT"],
        ["1m"],
        Resumption(replay, frozenset({"BTCUSDT"}), timeout_s=5, limit=100),
    )
    register = request.param
    binding = ServiceBinding(SERVICE_NAME, lambda server: register(servicer, server))
    server = await start_server("127.0.0.1:0", [binding])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Harness(price_service_pb2_grpc.PriceServiceStub(channel), prices, hub, replay)
    await server.stop(0)


async def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""


@pytest.mark.asyncio
async def test_get_price(
    service: Harness,
) -> None:
    stub = service.stub

    response = await stub.GetPrice(price_service_pb2.GetPriceRequest(symbol="btcusdt"))

    assert response.price == BTC


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("symbol", "code", "message"),
    [
        ("BTC/USDT", grpc.StatusCode.INVALID_ARGUMENT, "symbol must be 1-32 letters or digits"),
        ("", grpc.StatusCode.INVALID_ARGUMENT, "symbol must be"),
        ("DOGEUSDT", grpc.StatusCode.NOT_FOUND, "DOGEUSDT is not tracked"),
        ("ETHUSDT", grpc.StatusCode.NOT_FOUND, "no price received for ETHUSDT yet"),
    ],
)
async def test_get_price_errors(
    service: Harness,
    symbol: str,
    code: grpc.StatusCode,
    message: str,
) -> None:
    stub = service.stub

    got_code, details = await _code(stub.GetPrice(price_service_pb2.GetPriceRequest(symbol=symbol)))

    assert got_code == code
    assert message in details


@pytest.mark.asyncio
async def test_store_down_is_unavailable(
    service: Harness,
) -> None:
    stub, prices = service.stub, service.prices
    prices.down = True

    code, details = await _code(stub.GetPrice(price_service_pb2.GetPriceRequest(symbol="BTCUSDT")))

    assert code == grpc.StatusCode.UNAVAILABLE
    assert "fake redis is down" in details


@pytest.mark.asyncio
async def test_bad_interval_is_invalid_argument(
    service: Harness,
) -> None:
    stub = service.stub
    request = price_service_pb2.GetCandlesRequest(symbol="BTCUSDT", interval="7m")

    code, details = await _code(stub.GetCandles(request))

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown interval '7m'" in details


@pytest.mark.asyncio
async def test_stream_delivers_published_updates(
    service: Harness,
) -> None:
    stub, hub = service.stub, service.hub
    call = stub.StreamPrices(price_service_pb2.StreamPricesRequest(symbols=["BTCUSDT"]))
    await _until_subscribed(hub, 1)

    hub.publish(market_pb2.PriceUpdate(symbol="ETHUSDT", price="1"))
    hub.publish(BTC)
    response = await asyncio.wait_for(call.read(), 5)
    call.cancel()

    assert isinstance(response, price_service_pb2.StreamPricesResponse)
    assert list(response.prices) == [BTC]


@pytest.mark.asyncio
async def test_slow_stream_is_resource_exhausted(
    service: Harness,
) -> None:
    stub, hub = service.stub, service.hub
    call = stub.StreamPrices(price_service_pb2.StreamPricesRequest())
    await _until_subscribed(hub, 1)

    for n in range(6):
        hub.publish(market_pb2.PriceUpdate(symbol="BTCUSDT", timestamp=n))
    code, details = await _code(call.read())

    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "more than 5 updates behind" in details
    assert hub.subscribers == 0


async def _until_subscribed(hub: StreamHub, count: int) -> None:
    async with asyncio.timeout(5):
        while hub.subscribers < count:  # noqa: ASYNC110 - hub state, not an awaitable
            await asyncio.sleep(0.005)


def _trade(symbol: str, n: int, received_ms: int) -> market_pb2.PriceUpdate:
    return market_pb2.PriceUpdate(
        symbol=symbol,
        price=f"{n}.0",
        timestamp=received_ms,
        kind=market_pb2.EVENT_KIND_TRADE,
        event_id=str(n),
        receive_timestamp=received_ms,
    )


async def _prices(call: object, count: int) -> list[market_pb2.PriceUpdate]:
    received: list[market_pb2.PriceUpdate] = []
    async with asyncio.timeout(5):
        while len(received) < count:
            response = await call.read()  # type: ignore[attr-defined]
            received.extend(response.prices)
    return received


@pytest.mark.asyncio
async def test_resumed_stream_replays_then_goes_live_without_repeating(
    service: Harness,
) -> None:
    stub, hub, replay = service.stub, service.hub, service.replay
    now = int(time.time() * 1000)
    updates = [_trade("ETHUSDT", n, now + n) for n in range(6)]
    replay.topic = updates[:4]

    def live_meanwhile() -> None:
        # Published while the read runs: #3 is in the topic too, #4 and #5 are not yet.
        for update in updates[3:]:
            hub.publish(update)

    replay.during_read = live_meanwhile
    call = stub.StreamPrices(
        price_service_pb2.StreamPricesRequest(symbols=["ETHUSDT"], resume_after=[updates[1]])
    )

    received = await _prices(call, 4)
    hub.publish(_trade("ETHUSDT", 6, now + 6))
    received += await _prices(call, 1)
    call.cancel()

    assert [u.event_id for u in received] == ["2", "3", "4", "5", "6"]


@pytest.mark.asyncio
async def test_resume_of_a_symbol_ingested_here_waits_for_its_hub_updates_in_kafka(
    service: Harness,
) -> None:
    stub, hub, replay = service.stub, service.hub, service.replay
    now = int(time.time() * 1000)
    updates = [_trade("BTCUSDT", n, now + n) for n in range(4)]
    for update in updates:
        hub.publish(update)  # before the subscription: in the replay, or nowhere
    # The fake read asserts that it settled: the hub's last update must be in the topic.
    replay.topic = updates

    call = stub.StreamPrices(
        price_service_pb2.StreamPricesRequest(symbols=["BTCUSDT"], resume_after=[updates[0]])
    )

    assert [u.event_id for u in await _prices(call, 3)] == ["1", "2", "3"]
    call.cancel()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("position", "code", "message"),
    [
        (_trade("XRPUSDT", 1, 1), grpc.StatusCode.INVALID_ARGUMENT, "not among the symbols"),
        (_trade("BTCUSDT", 1, 0), grpc.StatusCode.INVALID_ARGUMENT, "no receive_timestamp"),
        (_trade("BTCUSDT", 1, 2**62), grpc.StatusCode.OUT_OF_RANGE, "in the future"),
    ],
)
async def test_bad_positions_are_refused(
    service: Harness, position: market_pb2.PriceUpdate, code: grpc.StatusCode, message: str
) -> None:
    call = service.stub.StreamPrices(
        price_service_pb2.StreamPricesRequest(symbols=["BTCUSDT"], resume_after=[position])
    )

    got, details = await _code(call.read())

    assert got == code
    assert message in details


@pytest.mark.asyncio
async def test_resume_from_before_retention_is_out_of_range(service: Harness) -> None:
    service.replay.truncated = frozenset({0})
    gone = _trade("ETHUSDT", 1, int(time.time() * 1000) - 86_400_000)
    call = service.stub.StreamPrices(price_service_pb2.StreamPricesRequest(resume_after=[gone]))

    code, details = await _code(call.read())

    assert code == grpc.StatusCode.OUT_OF_RANGE
    assert "older than what Kafka still holds" in details
    assert service.hub.subscribers == 0


@pytest.mark.asyncio
async def test_resume_without_kafka_is_unavailable(service: Harness) -> None:
    service.replay.down = True
    position = _trade("ETHUSDT", 1, int(time.time() * 1000))
    call = service.stub.StreamPrices(price_service_pb2.StreamPricesRequest(resume_after=[position]))

    code, details = await _code(call.read())

    assert code == grpc.StatusCode.UNAVAILABLE
    assert "cannot resume: fake kafka is down" in details

"""PriceService over a real in-process gRPC server, with fake stores."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio

from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc
from finplat.core.clock import SystemClock
from finplat.core.grpc_server import ServiceBinding, start_server
from finplat.market.intervals import IntervalSpec
from finplat.price.adapters.errors import StoreUnavailableError
from finplat.price.service.api import SERVICE_NAME, PriceServicer, add_price_service
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


@dataclass
class Harness:
    """The servicer on a real server, a client stub, and the fakes behind it."""

    stub: "price_service_pb2_grpc.PriceServiceAsyncStub"
    prices: FakeLatestPrices
    hub: StreamHub


def _generated(servicer: PriceServicer, server: grpc.aio.Server) -> None:
    price_service_pb2_grpc.add_PriceServiceServicer_to_server(servicer, server)


# The service registers with `add_price_service` (StreamPrices writes pre-encoded messages);
# the generated registration must serve the same contract.
@pytest_asyncio.fixture(params=[add_price_service, _generated], ids=["encoded", "generated"])
async def service(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    prices = FakeLatestPrices()
    hub = StreamHub(queue_capacity=5)
    servicer = PriceServicer(
        prices, FakeCandleStore(), hub, SystemClock(), ["BTCUSDT", "ETHUSDT"], ["1m"]
    )
    register = request.param
    binding = ServiceBinding(SERVICE_NAME, lambda server: register(servicer, server))
    server = await start_server("127.0.0.1:0", [binding])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Harness(price_service_pb2_grpc.PriceServiceStub(channel), prices, hub)
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

"""The gRPC services as a grpcurl user sees them: reflection, calls, a stream and errors."""

import itertools
import json
from typing import Any

import pytest

from tests.e2e.conftest import Platform
from tests.e2e.grpcurl import (
    BACKTEST_GRPC,
    GRPCURL_STATUS_EXIT_BASE,
    PRICE_GRPC,
    grpcurl,
    grpcurl_stream,
    read_messages,
)
from tests.support import eventually

pytestmark = pytest.mark.integration

_MINUTE_MS = 60_000
# The feed is seconds behind at most; at the replay's 60x that is minutes of market time.
_MAX_MARKET_LAG_MS = 10 * _MINUTE_MS
# google.rpc.Code values, as grpcurl turns them into its exit code.
_NOT_FOUND = 5
_INVALID_ARGUMENT = 3


def _listed(address: str) -> set[str]:
    result = grpcurl("-plaintext", address, "list")
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.mark.usefixtures("platform")
def test_list_shows_the_price_service_health_and_reflection() -> None:
    listed = _listed(PRICE_GRPC)

    assert {"finance.market.v1.PriceService", "grpc.health.v1.Health"} <= listed
    assert any(name.startswith("grpc.reflection.") for name in listed), listed


@pytest.mark.usefixtures("platform")
def test_list_shows_the_backtest_service_health_and_reflection() -> None:
    listed = _listed(BACKTEST_GRPC)

    assert {"finance.backtest.v1.BacktestService", "grpc.health.v1.Health"} <= listed
    assert any(name.startswith("grpc.reflection.") for name in listed), listed


@pytest.mark.usefixtures("platform")
def test_describe_shows_the_price_service_as_the_contract_defines_it() -> None:
    result = grpcurl("-plaintext", PRICE_GRPC, "describe", "finance.market.v1.PriceService")

    assert result.returncode == 0, result.stderr
    assert "finance.market.v1.PriceService is a service:" in result.stdout
    # The four RPCs of price_service.proto, the stream among them.
    for rpc in ("GetPrice", "ListPrices", "GetCandles"):
        assert f"rpc {rpc} (" in result.stdout
    assert (
        "rpc StreamPrices ( .finance.market.v1.StreamPricesRequest ) "
        "returns ( stream .finance.market.v1.StreamPricesResponse )"
    ) in result.stdout


@pytest.mark.usefixtures("platform")
def test_describe_shows_a_message_with_the_fields_of_market_proto() -> None:
    result = grpcurl("-plaintext", PRICE_GRPC, "describe", "finance.market.v1.PriceUpdate")

    assert result.returncode == 0, result.stderr
    assert "finance.market.v1.PriceUpdate is a message:" in result.stdout
    # The first five fields keep the original JSON message's names and numbers.
    for field in (
        "string symbol = 1;",
        "string price = 2;",
        "int64 timestamp = 3;",
        "string volume = 4;",
        "string service = 5;",
    ):
        assert field in result.stdout


def _get_price(symbol: str) -> dict[str, Any] | None:
    result = grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"symbol": symbol}),
        PRICE_GRPC,
        "finance.market.v1.PriceService/GetPrice",
    )
    if result.returncode != 0:
        return None
    price: dict[str, Any] = json.loads(result.stdout)["price"]
    return price


def test_get_price_returns_the_replayed_market(platform: Platform) -> None:
    # Right after a start the first update may not have arrived yet.
    price = eventually(lambda: _get_price("BTCUSDT"), timeout_s=30, interval_s=0.5)
    market_now = platform.market_now_ms()

    assert price["symbol"] == "BTCUSDT"
    assert price["service"] == "price-service"
    assert float(price["price"]) > 0
    assert float(price["volume"]) >= 0
    # grpcurl prints int64 as a JSON string, as the proto3 JSON mapping says.
    assert market_now - _MAX_MARKET_LAG_MS <= int(price["timestamp"]) <= market_now


@pytest.mark.usefixtures("platform")
def test_stream_prices_delivers_updates_that_move_forward() -> None:
    request = json.dumps({"symbols": ["BTCUSDT"]})
    method = "finance.market.v1.PriceService/StreamPrices"
    # -max-time bounds the call itself; the test stops reading after three messages.
    args = ("-plaintext", "-max-time", "30", "-d", request, PRICE_GRPC, method)

    with grpcurl_stream(*args) as process:
        assert process.stdout is not None
        messages = read_messages(process.stdout, count=3)

    assert len(messages) == 3, messages
    prices = [price for message in messages for price in message["prices"]]
    assert {price["symbol"] for price in prices} == {"BTCUSDT"}
    timestamps = [int(price["timestamp"]) for price in prices]
    assert all(a < b for a, b in itertools.pairwise(timestamps)), timestamps


@pytest.mark.usefixtures("platform")
def test_unknown_symbol_is_not_found_in_grpcurls_words_and_exit_code() -> None:
    result = grpcurl(
        "-plaintext",
        "-d",
        '{"symbol": "NOSUCHCOIN"}',
        PRICE_GRPC,
        "finance.market.v1.PriceService/GetPrice",
    )

    assert result.returncode == GRPCURL_STATUS_EXIT_BASE + _NOT_FOUND, result.stderr
    assert "Code: NotFound" in result.stderr
    assert "NOSUCHCOIN" in result.stderr


@pytest.mark.usefixtures("platform")
def test_malformed_symbol_is_invalid_argument() -> None:
    result = grpcurl(
        "-plaintext",
        "-d",
        '{"symbol": "not a symbol!"}',
        PRICE_GRPC,
        "finance.market.v1.PriceService/GetPrice",
    )

    assert result.returncode == GRPCURL_STATUS_EXIT_BASE + _INVALID_ARGUMENT, result.stderr
    assert "Code: InvalidArgument" in result.stderr


@pytest.mark.usefixtures("platform")
def test_backtest_service_lists_the_strategies_with_their_parameters() -> None:
    result = grpcurl(
        "-plaintext", BACKTEST_GRPC, "finance.backtest.v1.BacktestService/ListStrategies"
    )

    assert result.returncode == 0, result.stderr
    strategies = {s["name"]: s for s in json.loads(result.stdout)["strategies"]}
    # The strategy the README's backtest example runs, with the parameters it sets.
    parameters = {p["name"] for p in strategies["sma_crossover"]["parameters"]}
    assert {"fast", "slow"} <= parameters

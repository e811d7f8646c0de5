"""Prices and candles as a REST, streaming and WebSocket user of the gateway sees them."""

import asyncio
import itertools
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.e2e.conftest import Platform
from tests.support import eventually

pytestmark = pytest.mark.integration

_MINUTE_MS = 60_000
# The feed is seconds behind at most; at the replay's 60x that is minutes of market time.
_MAX_MARKET_LAG_MS = 10 * _MINUTE_MS
_ORIGINAL_FIELDS = ("symbol", "price", "timestamp", "volume", "service")


def _latest_price(gateway: httpx.Client, symbol: str) -> dict[str, Any] | None:
    response = gateway.get(f"/api/prices/{symbol}")
    return response.json() if response.status_code == httpx.codes.OK else None


def test_latest_price_is_the_replayed_one(gateway: httpx.Client, platform: Platform) -> None:
    price = eventually(lambda: _latest_price(gateway, "BTCUSDT"), timeout_s=30, interval_s=0.2)
    market_now = platform.market_now_ms()

    assert set(_ORIGINAL_FIELDS) <= set(price)
    assert price["symbol"] == "BTCUSDT"
    assert price["service"] == "price-service"
    assert float(price["price"]) > 0
    assert float(price["volume"]) >= 0
    assert market_now - _MAX_MARKET_LAG_MS <= int(price["timestamp"]) <= market_now


def test_latest_price_moves_with_the_feed(gateway: httpx.Client) -> None:
    first = eventually(lambda: _latest_price(gateway, "ETHUSDT"), timeout_s=30, interval_s=0.2)

    def newer() -> dict[str, Any] | None:
        price = _latest_price(gateway, "ETHUSDT")
        return price if price and int(price["timestamp"]) > int(first["timestamp"]) else None

    assert eventually(newer, timeout_s=30, interval_s=0.2)["symbol"] == "ETHUSDT"


def test_price_list_has_each_tracked_symbol_once_in_order(gateway: httpx.Client) -> None:
    eventually(lambda: _latest_price(gateway, "ETHUSDT"), timeout_s=30, interval_s=0.2)

    every = gateway.get("/api/prices")
    chosen = gateway.get("/api/prices", params={"symbols": "ETHUSDT"})

    assert every.status_code == httpx.codes.OK, every.text
    symbols = [price["symbol"] for price in every.json()["prices"]]
    assert {"BTCUSDT", "ETHUSDT"} <= set(symbols)
    assert symbols == sorted(set(symbols))
    assert [price["symbol"] for price in chosen.json()["prices"]] == ["ETHUSDT"]


def test_unknown_symbol_is_404_with_a_status_body(gateway: httpx.Client) -> None:
    response = gateway.get("/api/prices/NOSUCHCOIN")

    assert response.status_code == httpx.codes.NOT_FOUND
    body = response.json()
    assert body["code"] == 5  # google.rpc.Code NOT_FOUND
    assert "NOSUCHCOIN" in body["message"]
    assert body["details"] == []


def _candles(gateway: httpx.Client, interval: str, limit: int) -> list[dict[str, Any]] | None:
    response = gateway.get(f"/api/candles/BTCUSDT/{interval}", params={"limit": limit})
    assert response.status_code == httpx.codes.OK, response.text
    candles: list[dict[str, Any]] = response.json().get("candles", [])
    return candles if len(candles) == limit else None


def test_one_minute_candles_ascend_by_open_time(gateway: httpx.Client) -> None:
    candles = eventually(lambda: _candles(gateway, "1m", 5), timeout_s=30, interval_s=0.2)

    opens = [int(candle["openTime"]) for candle in candles]
    assert [b - a for a, b in itertools.pairwise(opens)] == [_MINUTE_MS] * 4
    assert {candle["interval"] for candle in candles} == {"INTERVAL_1M"}
    assert {candle["symbol"] for candle in candles} == {"BTCUSDT"}
    for candle in candles:
        low, high = float(candle["low"]), float(candle["high"])
        assert low <= float(candle["open"]) <= high
        assert low <= float(candle["close"]) <= high


def test_five_minute_candles(gateway: httpx.Client) -> None:
    candles = eventually(lambda: _candles(gateway, "5m", 5), timeout_s=30, interval_s=0.2)

    opens = [int(candle["openTime"]) for candle in candles]
    assert {candle["interval"] for candle in candles} == {"INTERVAL_5M"}
    assert all(open_ms % (5 * _MINUTE_MS) == 0 for open_ms in opens)
    assert opens == sorted(opens)
    assert len(set(opens)) == 5


def test_bad_interval_is_400(gateway: httpx.Client) -> None:
    response = gateway.get("/api/candles/BTCUSDT/7x")

    assert response.status_code == httpx.codes.BAD_REQUEST
    assert response.json()["code"] == 3  # INVALID_ARGUMENT


def test_price_stream_yields_ndjson_results(platform: Platform) -> None:
    url = f"{platform.gateway_url}/api/prices:stream"
    with httpx.stream("GET", url, params={"symbols": "BTCUSDT"}, timeout=30) as response:
        assert response.status_code == httpx.codes.OK
        line = next(line for line in response.iter_lines() if line.strip())

    message = json.loads(line)
    assert set(message) == {"result"}
    prices = message["result"]["prices"]
    assert prices
    assert {price["symbol"] for price in prices} == {"BTCUSDT"}


@pytest.mark.asyncio
async def test_websocket_receives_live_updates_with_original_field_names(
    platform: Platform,
) -> None:
    updates: list[dict[str, Any]] = []
    url = f"{platform.ws_url}/ws/prices?symbols=BTCUSDT"
    async with asyncio.timeout(30), connect(url, open_timeout=10) as ws:
        while len(updates) < 2:
            frame = json.loads(await ws.recv())
            # Acknowledgements and pings carry a "type"; price frames are bare updates.
            if "type" not in frame:
                updates.append(frame)

    for update in updates:
        assert list(update)[:5] == list(_ORIGINAL_FIELDS)
        assert update["symbol"] == "BTCUSDT"
    assert int(updates[1]["timestamp"]) > int(updates[0]["timestamp"])

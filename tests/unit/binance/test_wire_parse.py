"""Binance events parsed into PriceUpdate and Candle, on the recorded real frames."""

import json
from pathlib import Path

import msgspec
import pytest

from finance.market.v1 import market_pb2
from finplat.binance.errors import MalformedFrameError
from finplat.binance.wire import (
    REST_KLINES,
    AggTrade,
    Kline,
    MarketEvent,
    MiniTicker,
    Ticker,
    Trade,
    decode_frame,
)

WS = Path("ws_messages")
RECEIVED_MS = 1_762_578_805_400


def _event(data_dir: Path, name: str) -> MarketEvent:
    frame = decode_frame((data_dir / WS / name).read_bytes())
    assert isinstance(frame, Trade | AggTrade | Kline | MiniTicker | Ticker)
    return frame


def _kline(data_dir: Path) -> Kline:
    lines = (data_dir / WS / "cryptofeed/BINANCE.ws.1.0").read_bytes().splitlines()
    raw = next(line for line in lines if b"nknusdt@kline_1m" in line and b'"data"' in line)
    frame = decode_frame(raw.split(b": ", 1)[1])
    assert isinstance(frame, Kline)
    return frame


def test_trade_becomes_a_price_update_with_its_trade_id(data_dir: Path) -> None:
    event = _event(data_dir, "FinanceTechnologyProjects/trade.json")

    update = event.parse_to_price_update("price-service", RECEIVED_MS)

    assert update == market_pb2.PriceUpdate(
        symbol="BTCUSDT",
        price="102571.17000000",
        timestamp=1762578805373,
        volume="0.00100000",
        service="price-service",
        kind=market_pb2.EVENT_KIND_TRADE,
        event_id="5455447976",
        exchange="binance",
        receive_timestamp=RECEIVED_MS,
    )


def test_agg_trade_uses_the_aggregate_id(data_dir: Path) -> None:
    event = _event(data_dir, "FinanceTechnologyProjects/aggTrade.json")

    update = event.parse_to_price_update("svc", RECEIVED_MS)

    assert (update.kind, update.event_id, update.price, update.volume) == (
        market_pb2.EVENT_KIND_AGG_TRADE,
        "3735249564",
        "102571.18000000",
        "0.00097000",
    )


def test_kline_update_carries_close_volume_and_interval_open_event_id(data_dir: Path) -> None:
    event = _kline(data_dir)

    update = event.parse_to_price_update("svc", RECEIVED_MS)

    assert (update.symbol, update.price, update.volume, update.timestamp) == (
        "NKNUSDT",
        "0.35280000",
        "25877.00000000",
        1633998523963,
    )
    assert update.kind == market_pb2.EVENT_KIND_KLINE
    assert update.event_id == "1m:1633998480000:1633998523963"


def test_kline_becomes_a_forming_candle(data_dir: Path) -> None:
    candle = _kline(data_dir).parse_to_candle()

    assert candle == market_pb2.Candle(
        symbol="NKNUSDT",
        interval=market_pb2.INTERVAL_1M,
        open_time=1633998480000,
        close_time=1633998539999,
        open="0.35270000",
        high="0.35280000",
        low="0.35220000",
        close="0.35280000",
        volume="25877.00000000",
        trade_count=30,
        closed=False,
        quote_volume="9116.04600000",
    )


@pytest.mark.parametrize(
    ("name", "price", "event_id"),
    [
        ("FinanceTechnologyProjects/miniTicker.json", "102571.17000000", "mini:1762578803031"),
        ("FinanceTechnologyProjects/ticker.json", "94160.00000000", "24h:1745666522004"),
    ],
)
def test_tickers_are_ticker_updates(data_dir: Path, name: str, price: str, event_id: str) -> None:
    update = _event(data_dir, name).parse_to_price_update("svc", RECEIVED_MS)

    assert (update.kind, update.price, update.event_id) == (
        market_pb2.EVENT_KIND_TICKER,
        price,
        event_id,
    )


def test_sequences_separate_kline_intervals_and_ticker_kinds(data_dir: Path) -> None:
    kline = _kline(data_dir)
    mini = _event(data_dir, "FinanceTechnologyProjects/miniTicker.json")
    ticker = _event(data_dir, "FinanceTechnologyProjects/ticker.json")

    assert kline.sequence() == (("NKNUSDT", market_pb2.EVENT_KIND_KLINE, "1m"), 1633998523963)
    assert mini.sequence()[0] != ticker.sequence()[0]


@pytest.mark.parametrize("price", ["", "1e5", "-1.0", "NaN", " 1.0", "1,5", "\u0661\u0662.\u0665"])
def test_a_price_that_is_not_a_plain_decimal_is_malformed(price: str) -> None:
    # "\u0661\u0662.\u0665" is 12.5 in Arabic-Indic digits: Decimal reads them, consumers do not.
    fields = {
        "e": "trade",
        "E": 1,
        "s": "BTCUSDT",
        "t": 1,
        "p": price,
        "q": "1.0",
        "T": 1,
        "m": True,
    }
    event = decode_frame(json.dumps(fields).encode())
    assert isinstance(event, Trade)

    with pytest.raises(MalformedFrameError):
        event.parse_to_price_update("svc", RECEIVED_MS)


_KLINE = {
    "t": 1_700_000_040_000,
    "T": 1_700_000_099_999,
    "s": "BTCUSDT",
    "i": "1m",
    "f": 1,
    "L": 2,
    "o": "1.0",
    "c": "1.0",
    "h": "1.0",
    "l": "1.0",
    "v": "1.0",
    "n": 2,
    "x": False,
    "q": "1.0",
    "V": "0.5",
    "Q": "0.5",
}


@pytest.mark.parametrize(
    ("event_time", "kline"),
    [
        (2**63, _KLINE),
        (1, {**_KLINE, "t": 2**63}),
        (1, {**_KLINE, "T": -(2**63) - 1}),
        (1, {**_KLINE, "n": 2**64}),
    ],
)
def test_an_integer_beyond_int64_is_malformed_before_it_reaches_a_message(
    event_time: int, kline: dict[str, object]
) -> None:
    # Decoded, it would make protobuf raise ValueError when the update or candle is built.
    raw = json.dumps({"e": "kline", "E": event_time, "s": "BTCUSDT", "k": kline}).encode()

    with pytest.raises(MalformedFrameError, match="invalid kline event"):
        decode_frame(raw)


def test_the_int64_bounds_themselves_decode() -> None:
    kline = {**_KLINE, "t": -(2**63), "T": 2**63 - 1}
    raw = json.dumps({"e": "kline", "E": 2**63 - 1, "s": "BTCUSDT", "k": kline}).encode()

    frame = decode_frame(raw)

    assert isinstance(frame, Kline)
    assert (frame.kline.parse_to_candle().open_time, frame.event_time) == (-(2**63), 2**63 - 1)


def test_a_rest_kline_beyond_int64_is_refused_by_the_decoder() -> None:
    row = [2**63, "1", "1", "1", "1", "1", 1, "1", 1, "1", "1", "0"]

    with pytest.raises(msgspec.ValidationError):
        REST_KLINES.decode(json.dumps([row]).encode())

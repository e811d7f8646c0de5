"""Decoding Binance frames: the recorded real frames, control replies, and anything at all."""

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finplat.binance.errors import MalformedFrameError, UnknownMessageError, WireError
from finplat.binance.wire import (
    AggTrade,
    ControlError,
    ControlReply,
    ControlRequest,
    Kline,
    MiniTicker,
    ServerShutdown,
    Ticker,
    Trade,
    decode_frame,
    encoder,
)

WS = Path("ws_messages")


def test_trade_frame_decodes_every_field(data_dir: Path) -> None:
    raw = (data_dir / WS / "FinanceTechnologyProjects/trade.json").read_bytes()

    frame = decode_frame(raw)

    assert frame == Trade(
        event_time=1762578805373,
        symbol="BTCUSDT",
        trade_id=5455447976,
        price="102571.17000000",
        quantity="0.00100000",
        trade_time=1762578805372,
        is_buyer_maker=True,
        ignore=True,
    )


def test_older_trade_frame_with_order_ids_decodes(data_dir: Path) -> None:
    raw = (data_dir / WS / "nautilus_trader/ws_spot_trade.json").read_bytes()

    frame = decode_frame(raw)

    assert isinstance(frame, Trade)
    assert (frame.symbol, frame.trade_id, frame.price) == ("ETHUSDT", 705291099, "4149.74000000")


@pytest.mark.parametrize(
    ("name", "agg_id", "first", "last"),
    [
        ("FinanceTechnologyProjects/aggTrade.json", 3735249564, 5455447977, 5455447976),
        ("nautilus_trader/ws_spot_agg_trade.json", 226532, 228423, 228423),
    ],
)
def test_agg_trade_frames_decode_as_recorded(
    data_dir: Path, name: str, agg_id: int, first: int, last: int
) -> None:
    frame = decode_frame((data_dir / WS / name).read_bytes())

    assert isinstance(frame, AggTrade)
    assert (frame.agg_id, frame.first_trade_id, frame.last_trade_id) == (agg_id, first, last)


def test_mini_ticker_frame_decodes(data_dir: Path) -> None:
    frame = decode_frame((data_dir / WS / "FinanceTechnologyProjects/miniTicker.json").read_bytes())

    assert frame == MiniTicker(
        event_time=1762578803031,
        symbol="BTCUSDT",
        close="102571.17000000",
        open="102339.76000000",
        high="104096.36000000",
        low="99260.86000000",
        volume="30195.39867000",
        quote_volume="3065280135.28113970",
    )


@pytest.mark.parametrize(
    ("name", "symbol", "last_price", "trades"),
    [
        ("FinanceTechnologyProjects/ticker.json", "BTCUSDT", "94160.00000000", 80199),
        ("nautilus_trader/ws_spot_ticker_24hr.json", "BNBBTC", "0.0025", 18151),  # unwrapped
    ],
)
def test_24h_ticker_frames_decode(
    data_dir: Path, name: str, symbol: str, last_price: str, trades: int
) -> None:
    frame = decode_frame((data_dir / WS / name).read_bytes())

    assert isinstance(frame, Ticker)
    assert (frame.symbol, frame.last_price, frame.trade_count) == (symbol, last_price, trades)


@pytest.mark.parametrize(
    "name",
    [
        "FinanceTechnologyProjects/bookTicker.json",
        "FinanceTechnologyProjects/depthUpdate.json",
        "nautilus_trader/ws_spot_ticker_book.json",
    ],
)
def test_streams_we_do_not_handle_are_unknown_not_malformed(data_dir: Path, name: str) -> None:
    with pytest.raises(UnknownMessageError):
        decode_frame((data_dir / WS / name).read_bytes())


def _recording(data_dir: Path) -> list[bytes]:
    lines = (data_dir / WS / "cryptofeed/BINANCE.ws.1.0").read_bytes().splitlines()
    return [line.split(b": ", 1)[1] for line in lines[1:] if line]


def test_recorded_session_kline_frames_decode_with_their_candle(data_dir: Path) -> None:
    klines = [f for f in map(_decode_or_none, _recording(data_dir)) if isinstance(f, Kline)]

    assert [(k.symbol, k.kline.open_time, k.kline.trade_count) for k in klines] == [
        ("NKNUSDT", 1633998480000, 30),
        ("LRCBTC", 1633998480000, 1),
    ]
    assert klines[0].kline.close == "0.35280000"
    assert klines[0].kline.closed is False


def test_recorded_session_sorts_into_handled_and_unknown(data_dir: Path) -> None:
    # SOURCE.md: 265 frames, 177 depth + 84 bookTicker (not ours), 2 kline + 2 aggTrade.
    outcomes = {"decoded": 0, "unknown": 0}
    for raw in _recording(data_dir):
        try:
            decode_frame(raw)
            outcomes["decoded"] += 1
        except UnknownMessageError:
            outcomes["unknown"] += 1

    assert outcomes == {"decoded": 4, "unknown": 261}


def _decode_or_none(raw: bytes) -> object:
    try:
        return decode_frame(raw)
    except WireError:
        return None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"result":null,"id":1}', ControlReply(result=None, id=1)),
        (b'{"result":["btcusdt@trade"],"id":3}', ControlReply(result=["btcusdt@trade"], id=3)),
        (
            b'{"code":2,"msg":"Invalid request","id":7}',
            ControlError(code=2, msg="Invalid request", id=7),
        ),
        (b'{"code":0,"msg":"Unknown property"}', ControlError(code=0, msg="Unknown property")),
        (b'{"error":{"code":2,"msg":"bad"},"id":4}', ControlError(code=2, msg="bad", id=4)),
        (b'{"e":"serverShutdown","E":1700000000000}', ServerShutdown(event_time=1700000000000)),
    ],
)
def test_control_frames_decode(raw: bytes, expected: object) -> None:
    assert decode_frame(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":17',
        b"[1,2,3]",
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":"x","p":1.5}}',
        b'{"e":"kline","E":1,"s":"BTCUSDT","k":{}}',
        b'{"result":null,"id":"one"}',
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b'{"e":"tr\xed\xa0\x80"}',  # a UTF-16 surrogate: invalid UTF-8
        b"\xff\xfe",
    ],
)
def test_broken_frames_are_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedFrameError):
        decode_frame(raw)


def test_subscribe_request_encodes_as_binance_expects() -> None:
    request = ControlRequest("SUBSCRIBE", 1, ["btcusdt@aggTrade", "btcusdt@depth"])

    assert json.loads(encoder.encode(request)) == {
        "method": "SUBSCRIBE",
        "id": 1,
        "params": ["btcusdt@aggTrade", "btcusdt@depth"],
    }


def test_encoded_trade_uses_binance_field_names(data_dir: Path) -> None:
    raw = (data_dir / WS / "FinanceTechnologyProjects/trade.json").read_bytes()
    recorded = json.loads(raw)["data"]

    encoded = json.loads(encoder.encode(decode_frame(raw)))

    assert encoded == recorded


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["e", "E", "s", "t", "p", "q", "k", "stream", "data", "id", "result"])
            | st.text(max_size=3),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_decoder(raw: bytes) -> None:
    assert _outcome(raw) in {"decoded", "malformed", "unknown"}


@settings(max_examples=500)
@given(_json, st.sampled_from(["trade", "aggTrade", "kline", "24hrTicker", "other"]))
def test_arbitrary_json_never_crashes_the_decoder(value: Any, event: str) -> None:
    for candidate in (value, {"e": event, **_as_dict(value)}, {"stream": "x", "data": value}):
        assert _outcome(json.dumps(candidate).encode()) in {"decoded", "malformed", "unknown"}


def _outcome(raw: bytes) -> str:
    """What became of a frame; any exception but a WireError fails the test."""
    try:
        decode_frame(raw)
    except WireError as exc:
        return exc.reason
    return "decoded"


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}

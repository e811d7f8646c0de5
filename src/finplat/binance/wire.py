"""Binance spot WebSocket frames as msgspec structs, and the one decoder of incoming frames.

Field names are readable; `name=` keeps Binance's single letters on the wire (mind the case:
`e` is the event type, `E` the event time). Prices and quantities stay strings, exactly as
sent. Events are told apart by `e` (a msgspec tagged union), so a combined-stream frame is
decoded in one pass. Anything else goes down a slow path that classifies it as a control
reply, a control error, an unknown message or a malformed frame; callers count those.
The same structs encode the frames of the replay server.

Each market event turns itself into the platform's values (`parse_to_price_update`,
`parse_to_candle`) and names its de-duplication sequence (`sequence`), so that the feed hands
the domain plain `PriceUpdate`s and `Candle`s and no domain module knows this format.
`event_id`, unique per (symbol, kind) as the contract requires:

* trade: the trade id (`"5455447976"`);
* aggTrade: the aggregate trade id;
* kline: `"<interval>:<open_time>:<event_time>"` (`"1m:1633998480000:1633998523963"`); the
  interval is part of it because 1m and 5m klines of one symbol share the kind KLINE;
* miniTicker / 24hrTicker: `"mini:<event_time>"` / `"24h:<event_time>"`, both kind TICKER.
"""

from typing import Annotated, Any, TypeAlias

import msgspec
from msgspec import Meta, Struct, field

from finance.market.v1 import market_pb2
from finplat.binance.errors import MalformedFrameError, UnknownMessageError
from finplat.market.decimals import PLAIN_DECIMAL
from finplat.market.intervals import IntervalSpec, parse_interval

EXCHANGE = "binance"
# (symbol, kind, sub-stream): the key along which an event's sequence number grows.
SequenceKey = tuple[str, int, str]
EventKind: TypeAlias = market_pb2.EventKind.ValueType
# Integers that become int64 fields of our messages: JSON numbers have no bound, and protobuf
# raises ValueError for one beyond 64 bits, so the decoder refuses those frames as malformed.
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]


class MarketEventBase(Struct, frozen=True, gc=False, tag_field="e"):
    """What every market event has: its time and symbol, and its parsing into our values."""

    event_time: Int64 = field(name="E")
    symbol: str = field(name="s")

    def _price_fields(self) -> tuple[str, str, EventKind, str]:
        """Price, volume, EventKind and event id of the update this event makes."""
        raise NotImplementedError

    def sequence(self) -> tuple[SequenceKey, int]:
        """The event's sequence key and the number that grows along it, for de-duplication."""
        raise NotImplementedError

    def parse_to_price_update(
        self, service: str, receive_ms: int, exchange: str = EXCHANGE
    ) -> market_pb2.PriceUpdate:
        """The platform's update of this event; `receive_ms` is when our feed got the frame.

        Raises MalformedFrameError when a price or quantity is not a plain decimal string.
        """
        price, volume, kind, event_id = self._price_fields()
        if not (PLAIN_DECIMAL.fullmatch(price) and PLAIN_DECIMAL.fullmatch(volume)):
            raise MalformedFrameError(f"not a decimal price/volume: {price!r} {volume!r}")
        return market_pb2.PriceUpdate(
            symbol=self.symbol,
            price=price,
            timestamp=self.event_time,
            volume=volume,
            service=service,
            kind=kind,
            event_id=event_id,
            exchange=exchange,
            receive_timestamp=receive_ms,
        )


class Trade(MarketEventBase, frozen=True, gc=False, tag="trade"):
    """`<symbol>@trade`: one trade."""

    trade_id: int = field(name="t")
    price: str = field(name="p")
    quantity: str = field(name="q")
    trade_time: int = field(name="T")
    is_buyer_maker: bool = field(name="m")
    ignore: bool = field(name="M", default=True)

    def _price_fields(self) -> tuple[str, str, EventKind, str]:
        return self.price, self.quantity, market_pb2.EVENT_KIND_TRADE, str(self.trade_id)

    def sequence(self) -> tuple[SequenceKey, int]:
        return (self.symbol, market_pb2.EVENT_KIND_TRADE, ""), self.trade_id


class AggTrade(MarketEventBase, frozen=True, gc=False, tag="aggTrade"):
    """`<symbol>@aggTrade`: trades of one taker order at one price."""

    agg_id: int = field(name="a")
    price: str = field(name="p")
    quantity: str = field(name="q")
    first_trade_id: int = field(name="f")
    last_trade_id: int = field(name="l")
    trade_time: int = field(name="T")
    is_buyer_maker: bool = field(name="m")
    ignore: bool = field(name="M", default=True)

    def _price_fields(self) -> tuple[str, str, EventKind, str]:
        return self.price, self.quantity, market_pb2.EVENT_KIND_AGG_TRADE, str(self.agg_id)

    def sequence(self) -> tuple[SequenceKey, int]:
        return (self.symbol, market_pb2.EVENT_KIND_AGG_TRADE, ""), self.agg_id


class KlineData(Struct, frozen=True, gc=False):
    """The `k` object of a kline event: the candle so far."""

    open_time: Int64 = field(name="t")
    close_time: Int64 = field(name="T")
    symbol: str = field(name="s")
    interval: str = field(name="i")
    first_trade_id: int = field(name="f")
    last_trade_id: int = field(name="L")
    open: str = field(name="o")
    close: str = field(name="c")
    high: str = field(name="h")
    low: str = field(name="l")
    volume: str = field(name="v")
    trade_count: Int64 = field(name="n")
    closed: bool = field(name="x")
    quote_volume: str = field(name="q")
    taker_buy_volume: str = field(name="V")
    taker_buy_quote_volume: str = field(name="Q")
    ignore: str = field(name="B", default="0")

    def parse_to_candle(self) -> market_pb2.Candle:
        """The candle so far; `closed` follows Binance's `x` (MalformedFrameError for an
        interval we do not know)."""
        try:
            interval = parse_interval(self.interval).proto
        except ValueError as exc:
            raise MalformedFrameError(str(exc)) from None
        return market_pb2.Candle(
            symbol=self.symbol,
            interval=interval,
            open_time=self.open_time,
            close_time=self.close_time,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            trade_count=self.trade_count,
            closed=self.closed,
            quote_volume=self.quote_volume,
        )


class Kline(MarketEventBase, frozen=True, gc=False, tag="kline"):
    """`<symbol>@kline_<interval>`: the current candle, pushed while it forms and at close."""

    kline: KlineData = field(name="k")

    def _price_fields(self) -> tuple[str, str, EventKind, str]:
        k = self.kline
        event_id = f"{k.interval}:{k.open_time}:{self.event_time}"
        return k.close, k.volume, market_pb2.EVENT_KIND_KLINE, event_id

    def sequence(self) -> tuple[SequenceKey, int]:
        return (self.symbol, market_pb2.EVENT_KIND_KLINE, self.kline.interval), self.event_time

    def parse_to_candle(self) -> market_pb2.Candle:
        """The candle this event carries (see `KlineData.parse_to_candle`)."""
        return self.kline.parse_to_candle()


class MiniTicker(MarketEventBase, frozen=True, gc=False, tag="24hrMiniTicker"):
    """`<symbol>@miniTicker`: rolling 24 h open, high, low, close and volumes."""

    close: str = field(name="c")
    open: str = field(name="o")
    high: str = field(name="h")
    low: str = field(name="l")
    volume: str = field(name="v")
    quote_volume: str = field(name="q")

    def _price_fields(self) -> tuple[str, str, EventKind, str]:
        event_id = f"mini:{self.event_time}"
        return self.close, self.volume, market_pb2.EVENT_KIND_TICKER, event_id

    def sequence(self) -> tuple[SequenceKey, int]:
        return (self.symbol, market_pb2.EVENT_KIND_TICKER, "mini"), self.event_time


class Ticker(MarketEventBase, frozen=True, gc=False, tag="24hrTicker"):
    """`<symbol>@ticker`: the full rolling 24 h statistics."""

    price_change: str = field(name="p")
    price_change_percent: str = field(name="P")
    weighted_average_price: str = field(name="w")
    first_trade_price: str = field(name="x")
    last_price: str = field(name="c")
    last_quantity: str = field(name="Q")
    best_bid_price: str = field(name="b")
    best_bid_quantity: str = field(name="B")
    best_ask_price: str = field(name="a")
    best_ask_quantity: str = field(name="A")
    open: str = field(name="o")
    high: str = field(name="h")
    low: str = field(name="l")
    volume: str = field(name="v")
    quote_volume: str = field(name="q")
    open_time: int = field(name="O")
    close_time: int = field(name="C")
    first_trade_id: int = field(name="F")
    last_trade_id: int = field(name="L")
    trade_count: int = field(name="n")

    def _price_fields(self) -> tuple[str, str, EventKind, str]:
        event_id = f"24h:{self.event_time}"
        return self.last_price, self.volume, market_pb2.EVENT_KIND_TICKER, event_id

    def sequence(self) -> tuple[SequenceKey, int]:
        return (self.symbol, market_pb2.EVENT_KIND_TICKER, "24h"), self.event_time


class ServerShutdown(Struct, frozen=True, gc=False, tag_field="e", tag="serverShutdown"):
    """Sent before the server goes down: reconnect now rather than at the drop."""

    event_time: int = field(name="E")


MarketEvent = Trade | AggTrade | Kline | MiniTicker | Ticker
Event = Trade | AggTrade | Kline | MiniTicker | Ticker | ServerShutdown
EVENT_TYPES = frozenset(
    ("trade", "aggTrade", "kline", "24hrMiniTicker", "24hrTicker", "serverShutdown")
)


class Combined(Struct, frozen=True, gc=False):
    """The combined-stream envelope `{"stream": ..., "data": ...}`."""

    stream: str
    data: Event


class ControlReply(Struct, frozen=True, kw_only=True):
    """Answer to SUBSCRIBE/UNSUBSCRIBE (`result` null) or LIST_SUBSCRIPTIONS (a list)."""

    result: Any = None
    id: int | None


class ControlError(Struct, frozen=True):
    """A refused control message, `{"code": 2, "msg": "Invalid request: ...", "id": 1}`."""

    code: int
    msg: str
    id: int | None = None


class ControlRequest(Struct, frozen=True):
    """What a client sends: `{"method": "SUBSCRIBE", "params": [...], "id": 1}`."""

    method: str
    id: int
    params: list[str] | None = None


Frame = Event | ControlReply | ControlError

_combined = msgspec.json.Decoder(Combined)
_event = msgspec.json.Decoder(Event)
_reply = msgspec.json.Decoder(ControlReply)
_error = msgspec.json.Decoder(ControlError)
_any = msgspec.json.Decoder()
encoder = msgspec.json.Encoder()
# msgspec raises its own errors, but also RecursionError for deep nesting and
# UnicodeDecodeError (a ValueError) for invalid UTF-8 inside strings.
_DECODE_ERRORS = (msgspec.MsgspecError, RecursionError, ValueError)


def decode_frame(raw: bytes | str) -> Frame:
    """Decode one frame; raise MalformedFrameError or UnknownMessageError, never anything else."""
    try:
        return _combined.decode(raw).data
    except _DECODE_ERRORS:
        pass  # not a known event in an envelope: classify it below, off the hot path
    return _classify(raw)


def _classify(raw: bytes | str) -> Frame:
    try:
        obj = _any.decode(raw)
    except _DECODE_ERRORS as exc:
        raise MalformedFrameError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedFrameError(f"not a JSON object: {type(obj).__name__}")
    if "stream" in obj and "data" in obj:
        data = obj["data"]
        event_type = _event_type(data)
        if event_type in EVENT_TYPES:
            raise MalformedFrameError(f"invalid {event_type} event")
        raise UnknownMessageError(f"unhandled stream message {event_type or obj['stream']!r:.40}")
    if "e" in obj:
        event_type = _event_type(obj)
        if event_type not in EVENT_TYPES:
            raise UnknownMessageError(f"unhandled event type {obj['e']!r}")
        return _strict(_event, raw, f"invalid {event_type} event")
    if "result" in obj and "id" in obj:
        return _strict(_reply, raw, "invalid control reply")
    if "code" in obj and "msg" in obj:
        return _strict(_error, raw, "invalid control error")
    if isinstance(obj.get("error"), dict):
        # Newer servers nest the error: {"error": {"code": 2, "msg": ...}, "id": 1}.
        error, request_id = obj["error"], obj.get("id")
        if isinstance(error.get("code"), int) and isinstance(error.get("msg"), str):
            ok_id = request_id if isinstance(request_id, int) else None
            return ControlError(code=error["code"], msg=error["msg"], id=ok_id)
        raise MalformedFrameError("invalid control error")
    raise UnknownMessageError(f"unhandled message with keys {sorted(map(str, obj))[:5]}")


def _event_type(data: object) -> str | None:
    event_type = data.get("e") if isinstance(data, dict) else None
    return event_type if isinstance(event_type, str) else None


def _strict(decoder: msgspec.json.Decoder[Any], raw: bytes | str, what: str) -> Frame:
    try:
        frame: Frame = decoder.decode(raw)
    except _DECODE_ERRORS as exc:
        raise MalformedFrameError(f"{what}: {exc}") from None
    return frame


# One row of GET /api/v3/klines: open time, OHLCV as strings, close time, quote volume, trade
# count, taker buy base and quote volumes, and an ignored field.
RestKline = tuple[Int64, str, str, str, str, str, Int64, str, Int64, str, str, str]
REST_KLINES = msgspec.json.Decoder(list[RestKline])


def rest_kline_candle(
    row: RestKline, symbol: str, interval: IntervalSpec, closed: bool
) -> market_pb2.Candle:
    """The candle of one REST kline row."""
    return market_pb2.Candle(
        symbol=symbol.upper(),
        interval=interval.proto,
        open_time=row[0],
        close_time=row[6],
        open=row[1],
        high=row[2],
        low=row[3],
        close=row[4],
        volume=row[5],
        trade_count=row[8],
        closed=closed,
        quote_volume=row[7],
    )

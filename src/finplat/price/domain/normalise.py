"""Binance wire events -> the platform's `PriceUpdate` and `Candle` (pure, no clock).

`event_id`, unique per (symbol, kind) as the contract requires:

* trade: the trade id (`"5455447976"`);
* aggTrade: the aggregate trade id;
* kline: `"<interval>:<open_time>:<event_time>"` (`"1m:1633998480000:1633998523963"`); the
  interval is part of it because 1m and 5m klines of one symbol share the kind KLINE;
* miniTicker / 24hrTicker: `"mini:<event_time>"` / `"24h:<event_time>"`, both kind TICKER.

`sequence` gives the de-duplicator a key and a number growing along that key.
"""

import re

from finance.market.v1 import market_pb2
from finplat.binance.errors import MalformedFrameError
from finplat.binance.wire import AggTrade, Kline, KlineData, MarketEvent, MiniTicker, Trade
from finplat.market.intervals import parse_interval

EXCHANGE = "binance"
# Exchange decimals: digits with an optional fraction, no sign, exponent or spaces.
_DECIMAL = re.compile(r"\d{1,20}(?:\.\d{1,20})?")

SequenceKey = tuple[str, int, str]


def sequence(event: MarketEvent) -> tuple[SequenceKey, int]:
    """(symbol, kind, sub-stream) and the number that grows along it, for de-duplication."""
    match event:
        case Trade():
            return (event.symbol, market_pb2.EVENT_KIND_TRADE, ""), event.trade_id
        case AggTrade():
            return (event.symbol, market_pb2.EVENT_KIND_AGG_TRADE, ""), event.agg_id
        case Kline():
            key = (event.symbol, market_pb2.EVENT_KIND_KLINE, event.kline.interval)
            return key, event.event_time
        case MiniTicker():
            return (event.symbol, market_pb2.EVENT_KIND_TICKER, "mini"), event.event_time
        case _:
            return (event.symbol, market_pb2.EVENT_KIND_TICKER, "24h"), event.event_time


class Normaliser:
    """Builds platform messages from wire events; `service` is the producer's name."""

    def __init__(self, service: str, exchange: str = EXCHANGE) -> None:
        self._service = service
        self._exchange = exchange

    def price_update(self, event: MarketEvent, receive_ms: int) -> market_pb2.PriceUpdate:
        """The price update of one event; `receive_ms` is when our feed got the frame.

        Raises MalformedFrameError when a price or quantity is not a plain decimal string.
        """
        match event:
            case Trade():
                price, volume, kind = event.price, event.quantity, market_pb2.EVENT_KIND_TRADE
                event_id = str(event.trade_id)
            case AggTrade():
                price, volume, kind = event.price, event.quantity, market_pb2.EVENT_KIND_AGG_TRADE
                event_id = str(event.agg_id)
            case Kline():
                k = event.kline
                price, volume, kind = k.close, k.volume, market_pb2.EVENT_KIND_KLINE
                event_id = f"{k.interval}:{k.open_time}:{event.event_time}"
            case MiniTicker():
                price, volume, kind = event.close, event.volume, market_pb2.EVENT_KIND_TICKER
                event_id = f"mini:{event.event_time}"
            case _:
                price, volume, kind = event.last_price, event.volume, market_pb2.EVENT_KIND_TICKER
                event_id = f"24h:{event.event_time}"
        if not (_DECIMAL.fullmatch(price) and _DECIMAL.fullmatch(volume)):
            raise MalformedFrameError(f"not a decimal price/volume: {price!r} {volume!r}")
        return market_pb2.PriceUpdate(
            symbol=event.symbol,
            price=price,
            timestamp=event.event_time,
            volume=volume,
            service=self._service,
            kind=kind,
            event_id=event_id,
            exchange=self._exchange,
            receive_timestamp=receive_ms,
        )

    def candle(self, event: Kline) -> market_pb2.Candle:
        """The candle of a kline event; `closed` follows Binance's `x`."""
        return kline_candle(event.kline)


def kline_candle(k: KlineData) -> market_pb2.Candle:
    """A `Candle` from a kline's `k` object (MalformedFrameError for an unknown interval)."""
    try:
        interval = parse_interval(k.interval).proto
    except ValueError as exc:
        raise MalformedFrameError(str(exc)) from None
    return market_pb2.Candle(
        symbol=k.symbol,
        interval=interval,
        open_time=k.open_time,
        close_time=k.close_time,
        open=k.open,
        high=k.high,
        low=k.low,
        close=k.close,
        volume=k.volume,
        trade_count=k.trade_count,
        closed=k.closed,
        quote_volume=k.quote_volume,
    )

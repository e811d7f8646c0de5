"""Binance WebSocket frames from recorded rows, encoded with the feed's own wire structs.

Recorded data lacks a few fields the exchange sends; they are filled as follows and nothing
else is invented: a trade's event time is its trade time; a kline's event time is one
millisecond after its close (the moment the closed kline is pushed); kline first/last trade
ids are -1 (unknown); an OHLCV-only source's quote and taker volumes are "0.00000000".
"""

from finance.market.v1 import market_pb2
from finplat.binance.archive import TradeRow
from finplat.binance.wire import Kline, KlineData, Trade, encoder
from finplat.market.intervals import interval_from_proto

_ZERO = "0.00000000"


def trade_payload(symbol: str, row: TradeRow, id_offset: int = 0, time_offset_ms: int = 0) -> bytes:
    """The raw `trade` event of one recorded trade (offsets shift looped replays)."""
    time_ms = row.time_ms + time_offset_ms
    return encoder.encode(
        Trade(
            event_time=time_ms,
            symbol=symbol,
            trade_id=row.trade_id + id_offset,
            price=row.price,
            quantity=row.quantity,
            trade_time=time_ms,
            is_buyer_maker=row.is_buyer_maker,
        )
    )


def kline_payload(candle: market_pb2.Candle, taker: tuple[str, str] = ("", "")) -> bytes:
    """The raw `kline` event pushing one candle (closed or forming)."""
    k = KlineData(
        open_time=candle.open_time,
        close_time=candle.close_time,
        symbol=candle.symbol,
        interval=interval_from_proto(candle.interval).code,
        first_trade_id=-1,
        last_trade_id=-1,
        open=candle.open,
        close=candle.close,
        high=candle.high,
        low=candle.low,
        volume=candle.volume,
        trade_count=candle.trade_count,
        closed=candle.closed,
        quote_volume=candle.quote_volume or _ZERO,
        taker_buy_volume=taker[0] or _ZERO,
        taker_buy_quote_volume=taker[1] or _ZERO,
    )
    event_time = candle.close_time + 1 if candle.closed else candle.close_time
    return encoder.encode(Kline(event_time=event_time, symbol=candle.symbol, kline=k))


def combined(stream: str, payload: bytes) -> bytes:
    """Wrap a raw event in the combined-stream envelope without re-encoding it."""
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"

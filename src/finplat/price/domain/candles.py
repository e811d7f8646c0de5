"""Candles built from trades, the way Binance builds its klines.

Binance emits a kline for every interval once a symbol trades, including intervals without a
trade: those have trade count 0, volume 0 and open = high = low = close = the previous close.
The builder does the same: a trade in a later bucket closes the current one and every empty
bucket in between, and `advance(now)` closes buckets whose time has passed without trades.
`TradeCandles` keeps one builder per symbol for the live feed and estimates the exchange's
clock so that minutes without trades close too.
Arithmetic is exact (Decimal); output strings use Binance's 8-decimal format.
"""

from dataclasses import dataclass
from decimal import Decimal

from finance.market.v1 import market_pb2
from finplat.core.clock import Clock
from finplat.market.decimals import CONTEXT, ZERO, format8, to_decimal
from finplat.market.intervals import IntervalSpec


@dataclass(slots=True)
class _Bucket:
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trade_count: int


class CandleBuilder:
    """Turns one symbol's trades, in time order, into candles of one interval."""

    def __init__(self, symbol: str, interval: IntervalSpec) -> None:
        self._symbol = symbol
        self._interval = interval
        self._bucket: _Bucket | None = None
        # Trades older than the current bucket cannot be applied to a closed candle.
        self.late_trades = 0

    def add_trade(self, price: str, quantity: str, time_ms: int) -> list[market_pb2.Candle]:
        """Apply one trade; returns the candles it closed (including empty ones), oldest first."""
        price_d, quantity_d = to_decimal(price), to_decimal(quantity)
        open_time = self._interval.start(time_ms)
        closed: list[market_pb2.Candle] = []
        bucket = self._bucket
        if bucket is not None and open_time < bucket.open_time:
            self.late_trades += 1
            return closed
        if bucket is not None and open_time > bucket.open_time:
            closed = self._close_until(open_time)
            bucket = self._bucket
        quote = CONTEXT.multiply(price_d, quantity_d)
        if bucket is None or bucket.trade_count == 0:
            # A fresh bucket, or an empty one carrying the previous close: the trade opens it.
            self._bucket = _Bucket(
                open_time, price_d, price_d, price_d, price_d, quantity_d, quote, 1
            )
            return closed
        bucket.high = max(bucket.high, price_d)
        bucket.low = min(bucket.low, price_d)
        bucket.close = price_d
        bucket.volume = CONTEXT.add(bucket.volume, quantity_d)
        bucket.quote_volume = CONTEXT.add(bucket.quote_volume, quote)
        bucket.trade_count += 1
        return closed

    def advance(self, now_ms: int) -> list[market_pb2.Candle]:
        """Close every bucket that ended at or before `now_ms`, empty ones included."""
        if self._bucket is None:
            return []
        return self._close_until(self._interval.start(now_ms))

    def forming(self) -> market_pb2.Candle | None:
        """The candle still forming, marked not closed; None before the first trade."""
        return None if self._bucket is None else self._candle(self._bucket, closed=False)

    def _close_until(self, open_time: int) -> list[market_pb2.Candle]:
        """Close the current bucket and emit empty ones up to (excluding) `open_time`."""
        closed: list[market_pb2.Candle] = []
        bucket = self._bucket
        while bucket is not None and bucket.open_time < open_time:
            closed.append(self._candle(bucket, closed=True))
            last = bucket.close
            next_open = self._interval.next_start(bucket.open_time)
            bucket = _Bucket(next_open, last, last, last, last, ZERO, ZERO, 0)
        self._bucket = bucket
        return closed

    def _candle(self, bucket: _Bucket, *, closed: bool) -> market_pb2.Candle:
        return market_pb2.Candle(
            symbol=self._symbol,
            interval=self._interval.proto,
            open_time=bucket.open_time,
            close_time=self._interval.close_time(bucket.open_time),
            open=format8(bucket.open),
            high=format8(bucket.high),
            low=format8(bucket.low),
            close=format8(bucket.close),
            volume=format8(bucket.volume),
            quote_volume=format8(bucket.quote_volume),
            trade_count=bucket.trade_count,
            closed=closed,
        )


class TradeCandles:
    """Candles built from trades, for symbols whose klines are not streamed.

    Buckets close when a later trade arrives, or when the exchange clock has passed their end
    by `lateness_ms`. That clock is estimated from the last event time, running at `clock_rate`
    since then (1 for the live exchange; the replay speed when replaying history), so empty
    minutes after the last trade close too, without ever racing ahead of the data.
    """

    def __init__(
        self, interval: IntervalSpec, clock: Clock, clock_rate: float, lateness_ms: int
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._rate = clock_rate
        self._lateness_ms = lateness_ms
        self._builders: dict[str, CandleBuilder] = {}
        self._last_event_ms: int | None = None
        self._last_event_at_s = 0.0

    def add(self, trade: market_pb2.PriceUpdate) -> list[market_pb2.Candle]:
        """Apply one trade; returns the candles it closed."""
        builder = self._builders.get(trade.symbol)
        if builder is None:
            builder = self._builders[trade.symbol] = CandleBuilder(trade.symbol, self._interval)
        if self._last_event_ms is None or trade.timestamp >= self._last_event_ms:
            self._last_event_ms = trade.timestamp
            self._last_event_at_s = self._clock.monotonic()
        return builder.add_trade(trade.price, trade.volume, trade.timestamp)

    def advance(self) -> list[market_pb2.Candle]:
        """Closed candles due by the estimated exchange clock, then every forming candle."""
        if self._last_event_ms is None:
            return []
        elapsed_ms = (self._clock.monotonic() - self._last_event_at_s) * 1000 * self._rate
        now_ms = self._last_event_ms + int(elapsed_ms) - self._lateness_ms
        out = [c for builder in self._builders.values() for c in builder.advance(now_ms)]
        out.extend(c for builder in self._builders.values() if (c := builder.forming()))
        return out

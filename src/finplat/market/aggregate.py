"""Coarser candles from finer ones (1m -> 5m, 30m, 1h, 1d, 1w, 1M), aligned to UTC buckets.

A coarse candle takes the first open, the highest high, the lowest low, the last close and the
sums of volume, quote volume and trade count of the finer candles inside its bucket. It is
`closed` when the finer candle ending the bucket has been seen closed, so a bucket cut short by
the end of the data stays open. An empty quote volume (a source without that column) makes
the coarse quote volume empty too rather than a made-up sum.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from finance.market.v1 import market_pb2
from finplat.market.decimals import CONTEXT, format8, to_decimal
from finplat.market.intervals import IntervalSpec


@dataclass(slots=True)
class _Acc:
    symbol: str
    open_time: int
    open: str
    high: Decimal
    low: Decimal
    close: str
    volume: Decimal
    quote_volume: Decimal | None
    trade_count: int
    closed: bool


class CandleAggregator:
    """Folds finer candles of one symbol, in open-time order, into `target` candles."""

    def __init__(self, target: IntervalSpec) -> None:
        self._target = target
        self._acc: _Acc | None = None
        # Finer candles older than the bucket being built: the coarse candle has gone out.
        self.late_candles = 0

    @property
    def target(self) -> IntervalSpec:
        return self._target

    def add(self, candle: market_pb2.Candle) -> list[market_pb2.Candle]:
        """Fold one finer candle in; returns the coarse candle it finished, if any."""
        open_time = self._target.start(candle.open_time)
        acc = self._acc
        if acc is not None and open_time < acc.open_time:
            self.late_candles += 1
            return []
        out: list[market_pb2.Candle] = []
        if acc is not None and open_time > acc.open_time:
            out.append(self._emit(acc))
            acc = None
        quote = to_decimal(candle.quote_volume) if candle.quote_volume else None
        if acc is None:
            self._acc = _Acc(
                symbol=candle.symbol,
                open_time=open_time,
                open=candle.open,
                high=to_decimal(candle.high),
                low=to_decimal(candle.low),
                close=candle.close,
                volume=to_decimal(candle.volume),
                quote_volume=quote,
                trade_count=candle.trade_count,
                closed=self._ends_bucket(candle, open_time),
            )
            return out
        acc.high = max(acc.high, to_decimal(candle.high))
        acc.low = min(acc.low, to_decimal(candle.low))
        acc.close = candle.close
        acc.volume = CONTEXT.add(acc.volume, to_decimal(candle.volume))
        acc.quote_volume = (
            None
            if quote is None or acc.quote_volume is None
            else CONTEXT.add(acc.quote_volume, quote)
        )
        acc.trade_count += candle.trade_count
        acc.closed = self._ends_bucket(candle, open_time)
        return out

    def flush(self) -> list[market_pb2.Candle]:
        """Emit the bucket in progress (closed only if its last finer candle was closed)."""
        acc, self._acc = self._acc, None
        return [] if acc is None else [self._emit(acc)]

    def _ends_bucket(self, candle: market_pb2.Candle, open_time: int) -> bool:
        return candle.closed and candle.close_time == self._target.close_time(open_time)

    def _emit(self, acc: _Acc) -> market_pb2.Candle:
        return market_pb2.Candle(
            symbol=acc.symbol,
            interval=self._target.proto,
            open_time=acc.open_time,
            close_time=self._target.close_time(acc.open_time),
            open=acc.open,
            high=format8(acc.high),
            low=format8(acc.low),
            close=acc.close,
            volume=format8(acc.volume),
            quote_volume="" if acc.quote_volume is None else format8(acc.quote_volume),
            trade_count=acc.trade_count,
            closed=acc.closed,
        )


def aggregate(
    candles: Iterable[market_pb2.Candle], target: IntervalSpec
) -> list[market_pb2.Candle]:
    """All coarse candles of a finite run of finer ones, the last possibly not closed."""
    aggregator = CandleAggregator(target)
    out: list[market_pb2.Candle] = []
    for candle in candles:
        out.extend(aggregator.add(candle))
    out.extend(aggregator.flush())
    return out

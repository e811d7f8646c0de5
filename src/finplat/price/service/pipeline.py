"""Routes each feed item to the stream hub and to every sink, never waiting on any of them.

Every candle, from a kline, a REST backfill or our own trades, passes `candle_fault` on its way
to the candle store: here is the one place all three meet.
"""

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from finance.market.v1 import market_pb2
from finplat.price.domain.candle_check import candle_fault
from finplat.price.domain.candles import TradeCandles
from finplat.price.service.stream_hub import StreamHub

logger = logging.getLogger(__name__)

T_contra = TypeVar("T_contra", contravariant=True)
# A bad candle is offered again on every tick while it forms: log the first of each fault and
# then only every thousandth, the counter says the rest.
_LOG_EVERY = 1000


class Sink(Protocol[T_contra]):
    """Anything that accepts items without blocking (a buffered sink, the Kafka publisher)."""

    def offer(self, item: T_contra) -> None:
        """Take one item; a full sink drops and counts, it never blocks."""
        ...


def stored_intervals(stream_kinds: Iterable[str], candles_from_trades: bool) -> frozenset[str]:
    """Intervals written to the candle store as such; others are aggregated from 1m."""
    intervals = {kind.removeprefix("kline_") for kind in stream_kinds if kind.startswith("kline_")}
    if candles_from_trades:
        intervals.add("1m")
    return frozenset(intervals)


class PricePipeline:
    """One feed item in, every consumer served: hub, latest prices, ticks, candles, Kafka."""

    def __init__(
        self,
        hub: StreamHub,
        latest: Sink[market_pb2.PriceUpdate],
        ticks: Sink[market_pb2.PriceUpdate],
        candles: Sink[market_pb2.Candle],
        kafka: Sink[market_pb2.PriceUpdate],
        trade_candles: TradeCandles | None,
        on_publish: Callable[[market_pb2.PriceUpdate], None] | None = None,
    ) -> None:
        self._on_publish = on_publish
        self._hub = hub
        self._latest = latest
        self._ticks = ticks
        self._candles = candles
        self._kafka = kafka
        self._trade_candles = trade_candles
        # Candles refused by `candle_fault`, by fault value; read by the metrics collector.
        self.rejected_candles: Counter[str] = Counter()

    def handle(self, item: market_pb2.PriceUpdate | market_pb2.Candle) -> None:
        """Dispatch one normalised item."""
        if isinstance(item, market_pb2.Candle):
            self._store_candle(item)
            return
        self._hub.publish(item)
        if self._on_publish is not None:
            self._on_publish(item)
        self._latest.offer(item)
        self._ticks.offer(item)
        self._kafka.offer(item)
        if self._trade_candles is not None and item.kind == market_pb2.EVENT_KIND_TRADE:
            for candle in self._trade_candles.add(item):
                self._store_candle(candle)

    def tick(self) -> None:
        """Close trade-built candles whose time has passed, and store the forming ones."""
        if self._trade_candles is not None:
            for candle in self._trade_candles.advance():
                self._store_candle(candle)

    def _store_candle(self, candle: market_pb2.Candle) -> None:
        fault = candle_fault(candle)
        if fault is None:
            self._candles.offer(candle)
            return
        self.rejected_candles[fault.value] += 1
        count = self.rejected_candles[fault.value]
        if count == 1 or count % _LOG_EVERY == 0:
            logger.warning(
                "candle not stored: %s",
                fault.value,
                extra={"count": count, "candle": str(candle).replace("\n", " ")},
            )

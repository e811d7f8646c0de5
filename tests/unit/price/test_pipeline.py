"""The pipeline routes every item and builds candles from trades on an estimated clock."""

from typing import Generic, TypeVar

from finance.market.v1 import market_pb2
from finplat.market.intervals import INTERVALS
from finplat.price.domain.candles import TradeCandles
from finplat.price.service.pipeline import PricePipeline, stored_intervals
from finplat.price.service.stream_hub import StreamHub

T = TypeVar("T")
MINUTE = 60_000
T0 = 1_502_942_400_000  # 2017-08-17T04:00:00Z


class FakeSink(Generic[T]):
    """Collects what it is offered."""

    def __init__(self) -> None:
        self.items: list[T] = []

    def offer(self, item: T) -> None:
        self.items.append(item)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def time_ms(self) -> int:
        return 0

    def monotonic(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.now_s += seconds


def _trade(price: str, quantity: str, time_ms: int) -> market_pb2.PriceUpdate:
    return market_pb2.PriceUpdate(
        symbol="BTCUSDT",
        price=price,
        volume=quantity,
        timestamp=time_ms,
        kind=market_pb2.EVENT_KIND_TRADE,
    )


def _pipeline(
    trade_candles: TradeCandles | None,
) -> tuple[
    PricePipeline, StreamHub, list[FakeSink[market_pb2.PriceUpdate]], FakeSink[market_pb2.Candle]
]:
    hub = StreamHub()
    update_sinks: list[FakeSink[market_pb2.PriceUpdate]] = [FakeSink(), FakeSink(), FakeSink()]
    candles: FakeSink[market_pb2.Candle] = FakeSink()
    latest, ticks, kafka = update_sinks
    return (
        PricePipeline(hub, latest, ticks, candles, kafka, trade_candles),
        hub,
        update_sinks,
        candles,
    )


def test_update_reaches_every_update_sink_and_the_hub() -> None:
    pipeline, hub, update_sinks, candles = _pipeline(None)
    update = _trade("1.5", "2", T0)

    pipeline.handle(update)

    assert [sink.items for sink in update_sinks] == [[update]] * 3
    assert hub.published == 1
    assert candles.items == []


def _candle(low: str) -> market_pb2.Candle:
    return market_pb2.Candle(
        symbol="BTCUSDT",
        open_time=T0,
        open="10.0",
        high="12.0",
        low=low,
        close="11.0",
        volume="3.0",
        quote_volume="31.5",
    )


def test_candle_goes_only_to_the_candle_store() -> None:
    pipeline, hub, update_sinks, candles = _pipeline(None)
    candle = _candle(low="9.0")

    pipeline.handle(candle)

    assert candles.items == [candle]
    assert hub.published == 0
    assert all(sink.items == [] for sink in update_sinks)


def test_a_candle_failing_the_check_is_counted_by_fault_and_never_offered() -> None:
    pipeline, _, _, candles = _pipeline(None)

    pipeline.handle(_candle(low="10.5"))  # above the open
    pipeline.handle(_candle(low="NaN"))
    pipeline.handle(_candle(low="10.5"))

    assert candles.items == []
    assert pipeline.rejected_candles == {"ohlc_order": 2, "not_a_number": 1}


def test_a_trade_built_candle_beyond_int64_is_refused_when_it_closes_and_forms() -> None:
    clock = FakeClock()
    pipeline, _, _, candles = _pipeline(TradeCandles(INTERVALS["1m"], clock, 1.0, 0))

    # 10^11 is past fixed point's largest price, about 9.2 x 10^10.
    pipeline.handle(_trade("100000000000", "1", T0 + 1_000))
    pipeline.tick()  # the first minute, forming: refused
    pipeline.handle(_trade("10", "1", T0 + MINUTE + 1_000))  # closes it: refused again
    pipeline.tick()  # the second minute, forming, is fine

    assert [(c.open_time, c.closed) for c in candles.items] == [(T0 + MINUTE, False)]
    assert pipeline.rejected_candles == {"not_fixed_point": 2}


def test_trades_close_minutes_including_empty_ones() -> None:
    clock = FakeClock()
    pipeline, _, _, candles = _pipeline(TradeCandles(INTERVALS["1m"], clock, 1.0, 0))

    pipeline.handle(_trade("4261.48", "0.5", T0 + 1_000))
    pipeline.handle(_trade("4280.00", "0.25", T0 + 2_000))
    pipeline.handle(_trade("4270.00", "1", T0 + 2 * MINUTE + 5))

    first, empty = candles.items
    assert (first.open, first.high, first.low, first.close) == (
        "4261.48000000",
        "4280.00000000",
        "4261.48000000",
        "4280.00000000",
    )
    assert (first.volume, first.trade_count, first.closed) == ("0.75000000", 2, True)
    assert (empty.open_time, empty.open, empty.close, empty.trade_count) == (
        T0 + MINUTE,
        "4280.00000000",
        "4280.00000000",
        0,
    )


def test_tick_closes_by_the_estimated_exchange_clock_and_stores_forming() -> None:
    clock = FakeClock()
    pipeline, _, _, candles = _pipeline(TradeCandles(INTERVALS["1m"], clock, 60.0, 2_000))
    pipeline.handle(_trade("10", "1", T0 + 59_000))

    pipeline.tick()
    forming_only = list(candles.items)
    clock.now_s += 1.0  # at 60x, one second of silence is a minute on the exchange
    pipeline.tick()

    assert [(c.open_time, c.closed) for c in forming_only] == [(T0, False)]
    assert [(c.open_time, c.closed) for c in candles.items[1:]] == [
        (T0, True),
        (T0 + MINUTE, False),
    ]


def test_stored_intervals() -> None:
    assert stored_intervals(["trade", "kline_1m", "kline_1h"], False) == {"1m", "1h"}
    assert stored_intervals(["trade"], True) == {"1m"}

"""Recorded data as time-ordered event streams, one per source, for the market to merge.

Each event is (market time ms, source number, sequence, stream name, raw event JSON); the
source number and sequence keep the merge stable and never compare payloads.
"""

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

from finance.market.v1 import market_pb2
from finplat.binance.archive import KlineTable, TradeRow, iter_trades
from finplat.market.aggregate import CandleAggregator
from finplat.market.intervals import DAY_MS, MINUTE_MS, IntervalSpec
from finplat.replay.frames import kline_payload, trade_payload

Event = tuple[int, int, int, str, bytes]


def whole_days(ms: int) -> int:
    """`ms` rounded up to whole days (at least one), so looped klines keep their alignment."""
    return max(DAY_MS, -(-ms // DAY_MS) * DAY_MS)


def loop_span(table: KlineTable, start_ms: int) -> int:
    """Shift between loops of a kline table: its replayed part, in whole days."""
    return whole_days(table.open_times[-1] + MINUTE_MS - start_ms)


def kline_events(
    source: int,
    table: KlineTable,
    intervals: list[IntervalSpec],
    start_ms: int,
    loop: bool,
    loops: dict[str, int],
) -> Iterator[Event]:
    """Closed klines from `start_ms` on: 1m rows as recorded, coarser ones aggregated.

    `loops[symbol]` is kept at the number of the pass being replayed.
    """
    first = table.index(start_ms)
    if first == len(table):
        # Nothing from the start on (or no data at all): looping would go round an empty pass
        # for ever.
        return
    span = loop_span(table, start_ms)
    symbol, counter = table.symbol.lower(), itertools.count()
    minute_stream = any(spec.code == "1m" for spec in intervals)
    for number in itertools.count():
        loops[table.symbol] = number
        offset = number * span
        aggregators = [CandleAggregator(spec) for spec in intervals if spec.code != "1m"]
        for i in range(first, len(table)):
            minute = table.candle(i)
            minute.open_time += offset
            minute.close_time += offset
            if minute_stream:
                fields = table.fields(i)
                payload = kline_payload(minute, (fields[9], fields[10]))
                yield minute.close_time + 1, source, next(counter), f"{symbol}@kline_1m", payload
            for aggregator in aggregators:
                stream = f"{symbol}@kline_{aggregator.target.code}"
                for coarse in _completed(aggregator, minute, start_ms + offset):
                    yield (
                        coarse.close_time + 1,
                        source,
                        next(counter),
                        stream,
                        kline_payload(coarse),
                    )
        if not loop:
            return


def _completed(
    aggregator: CandleAggregator, minute: market_pb2.Candle, replay_first_ms: int
) -> list[market_pb2.Candle]:
    """Coarse candles completed by `minute`, leaving out buckets begun before the replay."""
    done = aggregator.add(minute)
    spec = aggregator.target
    if minute.close_time == spec.close_time(spec.start(minute.open_time)):
        done += aggregator.flush()
    return [c for c in done if c.closed and c.open_time >= replay_first_ms]


def trade_events(
    source: int,
    symbol: str,
    paths: list[Path],
    start_ms: int,
    offset_of: Callable[[int], int],
    loop: bool,
) -> Iterator[Event]:
    """Trades at their time plus `offset_of(first trade time)`; looped passes shift times
    by the data's span in whole days and ids by their count."""
    stream, counter = f"{symbol.lower()}@trade", itertools.count()
    base_offset: int | None = None
    loop_shift = id_shift = 0
    while True:
        first: TradeRow | None = None
        last: TradeRow | None = None
        for path in paths:
            for row in iter_trades(path):
                if base_offset is None:
                    base_offset = offset_of(row.time_ms)
                if first is None:
                    first = row
                last = row
                market_ms = row.time_ms + base_offset + loop_shift
                if market_ms >= start_ms:
                    payload = trade_payload(symbol, row, id_shift, loop_shift)
                    yield market_ms, source, next(counter), stream, payload
        if not loop or first is None or last is None:
            return
        loop_shift += whole_days(last.time_ms - first.time_ms + 1)
        id_shift += last.trade_id - first.trade_id + 1

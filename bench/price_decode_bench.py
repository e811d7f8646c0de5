"""Benchmark: Binance frames per second through decode + normalise, against plain json.loads.

Frames are built from real data (the 2017-08-17 BTCUSDT trades and the 2024-10-01 BTCUSDT 1m
klines, from FINPLAT_DATA_DIR, default ../shared/data/binance next to the repository) in the
combined-stream envelope, with unique, increasing ids so the de-duplicator passes them all.
Rows, on one core, best of `--repeat` runs:

* json.loads          the standard library parsing the frame into dicts, nothing else;
* decode              `wire.decode_frame` into typed structs;
* decode + normalise  + de-duplication and the `PriceUpdate` (and `Candle` for klines);
* feed path           `BinanceFeed.handle_frame`: the above plus stats and the hand-over queue,
                      exactly what the feed runs per frame.

Run: `.venv/bin/python bench/price_decode_bench.py [--frames 200000]`.
"""

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from finplat.binance import archive
from finplat.binance.wire import Kline, MarketEventBase, decode_frame
from finplat.price.adapters.binance.feed import BinanceFeed
from finplat.price.adapters.binance.settings import FeedSettings
from finplat.price.domain.dedup import Deduplicator
from finplat.replay.frames import combined, kline_payload, trade_payload
from finplat.replay.settings import ReplaySettings


def _frames(data_dir: Path, count: int, kind: str) -> list[bytes]:
    if kind == "trade":
        rows = list(
            archive.iter_trades(data_dir / "trades/spot/BTCUSDT/BTCUSDT-trades-2017-08-17.csv.gz")
        )
        return [
            combined(
                "btcusdt@trade",
                trade_payload("BTCUSDT", rows[i % len(rows)], id_offset=i - i % len(rows)),
            )
            for i in range(count)
        ]
    table = archive.load_kline_table(
        "BTCUSDT", [data_dir / "klines/spot/BTCUSDT/1m/BTCUSDT-1m-2024-10-01.csv.gz"]
    )
    frames = []
    for i in range(count):
        candle = table.candle(i % len(table))
        shift = (i // len(table)) * 86_400_000  # next "day" for each pass: event times keep rising
        candle.open_time += shift
        candle.close_time += shift
        frames.append(combined("btcusdt@kline_1m", kline_payload(candle)))
    return frames


def _json_loads(frames: list[bytes]) -> None:
    for raw in frames:
        json.loads(raw)


def _decode(frames: list[bytes]) -> None:
    for raw in frames:
        decode_frame(raw)


def _decode_normalise(frames: list[bytes]) -> None:
    dedup = Deduplicator()
    receive_ms = time.time_ns() // 1_000_000
    for raw in frames:
        event = decode_frame(raw)
        assert isinstance(event, MarketEventBase)  # only market events here
        key, number = event.sequence()
        dedup.check(key, number)
        event.parse_to_price_update("bench", receive_ms)
        if isinstance(event, Kline):
            event.parse_to_candle()


def _feed_path(frames: list[bytes]) -> None:
    async def run() -> None:
        feed = BinanceFeed(FeedSettings(queue_size=len(frames) * 2))
        for raw in frames:
            await feed.handle_frame(raw)
        assert feed.stats.updates == len(frames), feed.stats

    asyncio.run(run())


def _best_rate(run: Callable[[list[bytes]], None], frames: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run(frames)
        best = min(best, time.perf_counter() - start)
    return len(frames) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data_dir = ReplaySettings().data_dir  # FINPLAT_DATA_DIR, as the replay reads it
    paths: list[tuple[str, Callable[[list[bytes]], None]]] = [
        ("json.loads", _json_loads),
        ("decode", _decode),
        ("decode + normalise", _decode_normalise),
        ("feed path", _feed_path),
    ]
    print(f"{'frames':<8} {'path':<20} {'frames/s':>12} {'vs json.loads':>14}")
    for kind in ("trade", "kline"):
        frames = _frames(data_dir, args.frames, kind)
        baseline = 0.0
        for name, run in paths:
            rate = _best_rate(run, frames, args.repeat)
            baseline = baseline or rate
            print(f"{kind:<8} {name:<20} {rate:>12,.0f} {rate / baseline:>13.2f}x")


if __name__ == "__main__":
    main()

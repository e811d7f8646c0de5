"""The Binance feed against the replay server: real WebSockets on 127.0.0.1, real data, faults."""

import asyncio
import itertools
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from finance.market.v1 import market_pb2
from finplat.binance import archive
from finplat.core.retry import RetryPolicy
from finplat.price.adapters.binance.feed import BinanceFeed, FeedItem
from finplat.price.adapters.binance.rest import BinanceRest
from finplat.price.adapters.binance.settings import FeedSettings, RestSettings
from finplat.replay.server import ReplayServer
from tests.integration.conftest import StartReplay

pytestmark = pytest.mark.asyncio

MINUTE = 60_000


def _settings(server: ReplayServer, **overrides: Any) -> FeedSettings:
    options: dict[str, Any] = {
        "ws_base_url": server.ws_url,
        "rest": RestSettings(base_url=server.http_url),
        "symbols": ("BTCUSDT",),
        "stream_kinds": ("kline_1m",),
        # A fixed, visible pause after a short-lived connection: at 600x, 0.5 s is 5 klines.
        "retry": RetryPolicy(initial_s=0.5, jitter=0.0, reset_after_s=3600),
        "ping_interval_s": None,
    }
    return FeedSettings(**(options | overrides))


async def _collect(
    feed: BinanceFeed,
    done: Callable[[list[FeedItem]], bool],
    on_item: Callable[[list[FeedItem]], None] | None = None,
    timeout_s: float = 30.0,
) -> list[FeedItem]:
    items: list[FeedItem] = []
    async with asyncio.timeout(timeout_s):
        async for item in feed:
            items.append(item)
            if on_item is not None:
                on_item(items)
            if done(items):
                return items
    return items


def _candles(items: list[FeedItem], symbol: str = "BTCUSDT") -> list[market_pb2.Candle]:
    return [i for i in items if isinstance(i, market_pb2.Candle) and i.symbol == symbol]


def _trades(items: list[FeedItem]) -> list[market_pb2.PriceUpdate]:
    return [
        i
        for i in items
        if isinstance(i, market_pb2.PriceUpdate) and i.kind == market_pb2.EVENT_KIND_TRADE
    ]


def _expected(data_dir: Path, symbol: str) -> dict[int, market_pb2.Candle]:
    if symbol == "ETHUSDT":
        table = archive.load_kline_table(symbol, archive.ohlcv_files(data_dir, symbol))
    else:
        files = archive.kline_files(data_dir, symbol, date(2024, 10, 1), date(2024, 10, 2))
        table = archive.load_kline_table(symbol, files)
    return {c.open_time: c for c in table.candles()}


def _contiguous(candles: list[market_pb2.Candle]) -> bool:
    times = sorted(c.open_time for c in candles)
    return all(b - a == MINUTE for a, b in itertools.pairwise(times))


def _with_zero_quote(candle: market_pb2.Candle) -> market_pb2.Candle:
    """The ETH file has no quote volume; the replay sends zero there (documented)."""
    copy = market_pb2.Candle()
    copy.CopyFrom(candle)
    copy.quote_volume = copy.quote_volume or "0.00000000"
    return copy


async def test_feed_receives_real_trades_and_klines(
    start_replay: StartReplay, data_dir: Path
) -> None:
    server = await start_replay()
    settings = _settings(server, symbols=("BTCUSDT", "ETHUSDT"), stream_kinds=("trade", "kline_1m"))

    async with BinanceFeed(settings) as feed:
        items = await _collect(
            feed,
            lambda items: len(_candles(items, "ETHUSDT")) >= 5 and len(_trades(items)) >= 20,
        )

    btc, eth = _expected(data_dir, "BTCUSDT"), _expected(data_dir, "ETHUSDT")
    assert _candles(items)
    assert all(c == btc[c.open_time] for c in _candles(items))
    assert all(c == _with_zero_quote(eth[c.open_time]) for c in _candles(items, "ETHUSDT"))
    trades = _trades(items)
    recorded = list(
        archive.iter_trades(data_dir / "trades/spot/BTCUSDT/BTCUSDT-trades-2017-08-17.csv.gz")
    )
    assert [t.event_id for t in trades] == [str(r.trade_id) for r in recorded[: len(trades)]]
    assert [(t.price, t.volume) for t in trades] == [
        (r.price, r.quantity) for r in recorded[: len(trades)]
    ]
    assert all(t.service == "price-service" and t.exchange == "binance" for t in trades)
    assert all(t.receive_timestamp > 0 for t in trades)
    assert feed.stats.malformed == feed.stats.duplicates == 0


async def test_dropped_connection_reconnects_and_backfills_the_gap(
    start_replay: StartReplay, data_dir: Path
) -> None:
    server = await start_replay()
    settings = _settings(server)

    def drop_after_three(items: list[FeedItem]) -> None:
        if len(_candles(items)) == 3 and server.faults.dropped == 0:
            server.faults.drop()

    async with BinanceRest(settings.rest) as rest, BinanceFeed(settings, rest=rest) as feed:
        items = await _collect(feed, lambda items: len(_candles(items)) >= 20, drop_after_three)

    candles = _candles(items)
    expected = _expected(data_dir, "BTCUSDT")
    assert feed.groups[0].connects == 2
    assert feed.stats.gaps == 1
    assert feed.stats.backfilled_candles >= 3
    assert len({c.open_time for c in candles}) == len(candles)  # no duplicates
    assert _contiguous(candles)  # no gap
    assert all(c == expected[c.open_time] for c in candles)


async def test_malformed_frames_are_counted_and_the_feed_carries_on(
    start_replay: StartReplay,
) -> None:
    server = await start_replay()

    def inject_after_two(items: list[FeedItem]) -> None:
        if len(items) == 2:
            server.faults.malformed(4)

    async with BinanceFeed(_settings(server)) as feed:
        items = await _collect(feed, lambda items: len(_candles(items)) >= 6, inject_after_two)

    assert feed.stats.malformed == 4
    assert feed.groups[0].connects == 1
    assert _contiguous(_candles(items))


async def test_rollover_opens_the_new_connection_first_no_gap_no_duplicate(
    start_replay: StartReplay,
) -> None:
    server = await start_replay()
    settings = _settings(server, stream_kinds=("trade", "kline_1m"), rollover_after_s=0.5)

    async with BinanceFeed(settings) as feed:
        items = await _collect(feed, lambda _: feed.groups[0].rollovers >= 3)

    candles, trades = _candles(items), _trades(items)
    assert feed.groups[0].rollovers >= 3
    assert feed.groups[0].reconnects == 0
    assert feed.stats.gaps == 0
    assert len({c.open_time for c in candles}) == len(candles)
    assert _contiguous(candles)
    ids = [int(t.event_id) for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # every trade once, in order


async def test_stalled_connection_is_replaced_and_the_gap_backfilled(
    start_replay: StartReplay,
) -> None:
    server = await start_replay()
    settings = _settings(server, stall_timeout_s=0.3)

    def stall_after_two(items: list[FeedItem]) -> None:
        if len(_candles(items)) == 2 and feed.groups[0].stalls == 0:
            server.faults.stall(1.0)

    async with BinanceRest(settings.rest) as rest, BinanceFeed(settings, rest=rest) as feed:
        items = await _collect(feed, lambda items: len(_candles(items)) >= 25, stall_after_two)

    candles = _candles(items)
    assert feed.groups[0].stalls >= 1
    assert feed.stats.backfilled_candles >= 1
    assert len({c.open_time for c in candles}) == len(candles)
    assert _contiguous(candles)


async def test_streams_beyond_the_url_are_subscribed_within_the_control_limit(
    start_replay: StartReplay,
) -> None:
    server = await start_replay()
    kinds = ("trade", "aggTrade", "miniTicker", "ticker", "kline_1m", "kline_5m", "kline_15m")
    settings = _settings(
        server,
        symbols=("BTCUSDT", "ETHUSDT"),
        stream_kinds=kinds,
        streams_in_url=1,
        subscribe_batch_size=2,  # 13 streams after the URL: 7 SUBSCRIBE messages
        control_messages_per_s=4,  # the server closes above 5 per second
    )

    async with BinanceFeed(settings) as feed:
        items = await _collect(
            feed, lambda items: feed.groups[0].connects == 1 and any(_is_5m(i) for i in items)
        )
        (client,) = server.market.listeners

    assert len(client.streams) == 14  # type: ignore[attr-defined]
    assert feed.groups[0].connects == 1
    assert feed.groups[0].control_errors == 0
    assert any(_is_5m(i) for i in items)


def _is_5m(item: FeedItem) -> bool:
    return isinstance(item, market_pb2.Candle) and item.interval == market_pb2.INTERVAL_5M


async def test_streams_above_the_per_connection_limit_use_more_connections(
    start_replay: StartReplay,
) -> None:
    server = await start_replay()
    settings = _settings(
        server,
        symbols=("BTCUSDT", "ETHUSDT"),
        stream_kinds=("trade", "kline_1m"),
        max_streams_per_connection=3,
    )

    async with BinanceFeed(settings) as feed:
        items = await _collect(feed, lambda items: len(_candles(items, "ETHUSDT")) >= 2)
        streams = sorted(len(c.streams) for c in server.market.listeners)  # type: ignore[attr-defined]

    assert len(feed.groups) == 2
    assert streams == [1, 3]
    assert _candles(items, "BTCUSDT")
    assert _candles(items, "ETHUSDT")


async def test_server_pings_are_answered_by_the_client(start_replay: StartReplay) -> None:
    # The server pings every 0.1 s and drops a client that does not answer within 1 s; ours
    # sends no pings of its own.
    server = await start_replay(ping_interval_s=0.1, ping_timeout_s=1.0)

    async with BinanceFeed(_settings(server, ping_interval_s=None)) as feed:
        await _collect(feed, lambda items: len(_candles(items)) >= 15)
        (client,) = server.market.listeners

    assert client.ws.latency > 0  # type: ignore[attr-defined]  # set when a pong came back
    assert feed.groups[0].connects == 1


async def test_server_shutdown_notice_triggers_a_seamless_rollover(
    start_replay: StartReplay,
) -> None:
    server = await start_replay()
    notified: list[int] = []

    def announce_after_three(items: list[FeedItem]) -> None:
        if len(_candles(items)) == 3 and not notified:
            notified.append(server.faults.shutdown_notice(server.market.now_ms()))

    async with BinanceFeed(_settings(server)) as feed:
        items = await _collect(feed, lambda items: len(_candles(items)) >= 10, announce_after_three)

    candles = _candles(items)
    assert notified == [1]
    assert feed.groups[0].rollovers == 1
    assert feed.groups[0].reconnects == 0
    assert feed.stats.gaps == 0
    assert len({c.open_time for c in candles}) == len(candles)
    assert _contiguous(candles)


async def test_a_resumed_feed_backfills_what_it_missed_newest_first_within_the_cap(
    start_replay: StartReplay, data_dir: Path
) -> None:
    start = 1_727_784_000_000  # 2024-10-01 12:00 UTC, where the replay's market clock starts
    server = await start_replay(start_ms=start)
    # The store ends 30 minutes before the feed's first kline; at most 10 are fetched back.
    settings = _settings(server, backfill_max_candles=10)
    resume = {("BTCUSDT", "1m"): start - 30 * MINUTE}

    async with (
        BinanceRest(settings.rest) as rest,
        BinanceFeed(settings, rest=rest, resume=resume) as feed,
    ):
        items = await _collect(
            feed, lambda items: feed.stats.backfilled_candles >= 10 and len(_candles(items)) >= 15
        )

    candles = _candles(items)
    live = [c.open_time for c in candles if c.open_time >= start]
    expected = _expected(data_dir, "BTCUSDT")
    assert feed.stats.gaps == 1
    assert feed.stats.backfilled_candles == 10
    assert min(c.open_time for c in candles) == min(live) - 10 * MINUTE
    assert len({c.open_time for c in candles}) == len(candles)
    assert _contiguous(candles)
    assert all(c == expected[c.open_time] for c in candles)

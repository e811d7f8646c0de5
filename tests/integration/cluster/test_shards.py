"""Sharded ingest: two price-service instances, shards 0 and 1 of 2 with the same symbol list,
fed by one replay server and writing one topic of the 3-node cluster. Every update the replay
sends is on the topic exactly once, published by the instance whose shard owns its symbol.

The shared data set has 1m klines of two symbols only and the split wants more, so the replay
reads klines written here: what matters is each update's identity, not its prices. A kline
update is identified by (symbol, event time), the sequence the feed de-duplicates on; the
replay pushes a closed 1m kline 1 ms after its close (replay/frames.py), so the expected
identities follow from the files alone.
"""

import contextlib
import csv
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from finplat.core.connections import InfluxSettings, KafkaSettings
from finplat.kafka.consumer import PriceUpdateConsumer
from tests.integration.cluster.conftest import Cluster
from tests.integration.conftest import StartReplay
from tests.integration.price.harness import fresh_topic, price_service
from tests.integration.price.test_price_service import MINUTE, _kafka_updates, _ms
from tests.support import eventually_async

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.asyncio]

SYMBOLS = ("SOLUSDT", "BTCUSDT", "XRPUSDT", "ETHUSDT", "BNBUSDT")
# The split by hand: sorted BNBUSDT, BTCUSDT, ETHUSDT, SOLUSDT, XRPUSDT dealt to 0, 1, 0, 1, 0.
OWNER = {"BNBUSDT": 0, "ETHUSDT": 0, "XRPUSDT": 0, "BTCUSDT": 1, "SOLUSDT": 1}
FIRST_OPEN = _ms("2024-10-01T12:00:00")
MINUTES = 12
# The market clock starts when the first client subscribes and a late subscriber misses what
# was sent before: 30 market minutes before the first close, 3 s at 600x, let both subscribe.
PRE_ROLL_MS = 30 * MINUTE


def _write_klines(data_dir: Path, minutes: int = MINUTES) -> None:
    """`minutes` 1m klines per symbol from FIRST_OPEN, in Binance's 12-column daily file."""
    for number, symbol in enumerate(SYMBOLS):
        folder = data_dir / "klines" / "spot" / symbol / "1m"
        folder.mkdir(parents=True)
        with (folder / f"{symbol}-1m-2024-10-01.csv").open("w", newline="") as handle:
            rows = csv.writer(handle)
            for minute in range(minutes):
                open_time = FIRST_OPEN + minute * MINUTE
                close_time = open_time + MINUTE - 1
                price = f"{100 + number}.{minute:02d}000000"
                # Open time, OHLC, volume, close time, quote volume, trades, taker buys, ignore.
                ohlc = (price, price, price, price)
                volume, taker = "1.00000000", "0.50000000"
                rows.writerow((open_time, *ohlc, volume, close_time, price, 1, taker, price, "0"))


def _messages_on(kafka: KafkaSettings) -> int:
    """Messages on the topic, from its end offsets (a fresh topic starts at 0)."""
    consumer = PriceUpdateConsumer(kafka, f"test-{uuid.uuid4().hex}")
    try:
        return sum(consumer.topic_end_offsets().values())
    finally:
        consumer.close()


def _service_name(shard: int) -> str:
    return f"price-shard-{shard}"


async def test_two_shards_publish_every_update_once_each_from_its_owner(
    start_replay: StartReplay,
    kafka_cluster: Cluster,
    influx_settings: InfluxSettings,
    tmp_path: Path,
) -> None:
    kafka_settings = kafka_cluster.kafka
    _write_klines(tmp_path)
    sent = Counter(
        (symbol, FIRST_OPEN + (minute + 1) * MINUTE)
        for symbol in SYMBOLS
        for minute in range(MINUTES)
    )
    replay = await start_replay(
        data_dir=tmp_path,
        symbols=SYMBOLS,
        kline_intervals=("1m",),
        start_ms=FIRST_OPEN - PRE_ROLL_MS,
    )
    topic = fresh_topic(kafka_settings)

    async with AsyncExitStack() as stack:
        shards = [
            await stack.enter_async_context(
                price_service(
                    replay,
                    kafka_settings,
                    influx_settings,
                    {
                        "symbols": SYMBOLS,
                        "stream_kinds": ("kline_1m",),
                        "shard_index": shard,
                        "shard_count": 2,
                        "service_name": _service_name(shard),
                    },
                    topic=topic,
                )
            )
            for shard in range(2)
        ]
        await eventually_async(lambda: len(replay.market.listeners) == 2, 10)
        assert replay.market.events_sent == 0, "a shard subscribed after the replay began"
        subscribed = sorted(sorted(c.streams) for c in replay.market.listeners)  # type: ignore[attr-defined]
        await eventually_async(lambda: replay.market.events_sent == len(sent), 15)
        producers = [running.service.publisher.producer for running in shards]
        # A shortfall shows in the comparison below, which names what is missing.
        with contextlib.suppress(TimeoutError):
            await eventually_async(lambda: sum(p.delivered for p in producers) >= len(sent), 10)
    # Both stopped: their sinks drained and their producers flushed.

    kafka = kafka_settings.model_copy(update={"topic": topic})
    on_topic = _messages_on(kafka)
    published = _kafka_updates(kafka, on_topic)

    assert len(published) == on_topic
    assert Counter((u.symbol, u.timestamp) for u in published) == sent  # each once, none missing
    assert {(u.symbol, u.service) for u in published} == {
        (symbol, _service_name(shard)) for symbol, shard in OWNER.items()
    }
    # Each instance asked the exchange for its own symbols only.
    assert subscribed == [
        ["bnbusdt@kline_1m", "ethusdt@kline_1m", "xrpusdt@kline_1m"],
        ["btcusdt@kline_1m", "solusdt@kline_1m"],
    ]

"""The price service end to end: the replay server feeds it real Binance data, and it is checked
through its gRPC API, the real Redis and InfluxDB behind it, and the real Kafka topic.

Expected values come from Binance's own files (klines, REST responses) or from a plain
aggregation written here, never from the service's code.
"""

import asyncio
import csv
import gzip
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2

from finance.market.v1 import market_pb2, price_service_pb2
from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.kafka.consumer import PriceUpdateConsumer
from finplat.kafka.serde import PriceUpdateDeserializer, registry_client
from finplat.stack.process import free_ports
from tests.integration.conftest import StartReplay
from tests.integration.price.harness import price_service
from tests.proxy import TcpProxy
from tests.support import eventually_async

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

MINUTE = 60_000
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class Row:
    """One Binance kline, as its file has it."""

    open_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trades: int


def _kline_rows(path: Path, start_ms: int, end_ms: int) -> list[Row]:
    with gzip.open(path, "rt") as handle:
        return [
            Row(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[7], int(r[8]))
            for r in csv.reader(handle)
            if start_ms <= int(r[0]) < end_ms
        ]


def _aggregate(rows: list[Row], minutes: int) -> list[Row]:
    """Coarser klines the plain way: group by bucket, first/max/min/last/sum."""
    buckets: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        buckets[row.open_time - row.open_time % (minutes * MINUTE)].append(row)
    out = []
    for start, group in sorted(buckets.items()):
        out.append(
            Row(
                start,
                group[0].open,
                f"{max(Decimal(r.high) for r in group):.8f}",
                f"{min(Decimal(r.low) for r in group):.8f}",
                group[-1].close,
                f"{sum(Decimal(r.volume) for r in group):.8f}",
                f"{sum(Decimal(r.quote_volume) for r in group):.8f}",
                sum(r.trades for r in group),
            )
        )
    return out


def _as_rows(candles: list[market_pb2.Candle]) -> list[Row]:
    return [
        Row(c.open_time, c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trade_count)
        for c in candles
    ]


def _kafka_updates(kafka: KafkaSettings, expected: int) -> list[market_pb2.PriceUpdate]:
    with registry_client(kafka) as registry:
        decode = PriceUpdateDeserializer(registry)
        consumer = PriceUpdateConsumer(kafka, f"test-{uuid.uuid4().hex}")
        consumer.subscribe()
        updates: list[market_pb2.PriceUpdate] = []
        try:
            for _ in range(120):
                updates.extend(decode(r.value) for r in consumer.poll(1000, 0.5))
                if len(updates) >= expected:
                    break
        finally:
            consumer.close()
    return updates


async def test_replayed_klines_are_served_stored_and_published(
    start_replay: StartReplay,
    kafka_settings: KafkaSettings,
    influx_settings: InfluxSettings,
    data_dir: Path,
) -> None:
    start, end = _ms("2024-10-01T22:00:00"), _ms("2024-10-02T00:00:00")
    replay = await start_replay(kline_last_day=date(2024, 10, 1), start_ms=start, speed=1200.0)
    btc = _kline_rows(data_dir / "klines/spot/BTCUSDT/1m/BTCUSDT-1m-2024-10-01.csv.gz", start, end)
    feed = {"symbols": ("BTCUSDT", "ETHUSDT"), "stream_kinds": ("kline_1m",)}

    metrics_port = free_ports()[0]
    async with price_service(
        replay, kafka_settings, influx_settings, feed, metrics_port=metrics_port
    ) as running:
        stream = running.stub.StreamPrices(
            price_service_pb2.StreamPricesRequest(symbols=["BTCUSDT"])
        )
        streamed: list[market_pb2.PriceUpdate] = []

        async def read_stream() -> None:
            async for message in stream:
                streamed.extend(message.prices)

        reader = asyncio.create_task(read_stream())

        async def all_minutes_stored() -> bool:
            return len(await running.candles("BTCUSDT", "1m", start, end)) == len(btc)

        await eventually_async(all_minutes_stored, 60)
        stream.cancel()
        await asyncio.gather(reader, return_exceptions=True)

        price = await running.stub.GetPrice(price_service_pb2.GetPriceRequest(symbol="BTCUSDT"))
        minutes = _as_rows(await running.candles("BTCUSDT", "1m", start, end))
        coarser = {
            code: _as_rows(await running.candles("BTCUSDT", code, start, end))
            for code in ("5m", "15m", "30m", "1h")
        }
        published = _kafka_updates(running.kafka, 2 * len(btc))
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text

    assert minutes == btc
    for code, size in (("5m", 5), ("15m", 15), ("30m", 30), ("1h", 60)):
        assert coarser[code] == _aggregate(btc, size), code
    rest = json.loads((data_dir / "klines_rest_json/30m/BTCUSDT/2024-09-23.json").read_text())
    binance_30m = [
        Row(r[0], r[1], r[2], r[3], r[4], r[5], r[7], r[8]) for r in rest if start <= r[0] < end
    ]
    assert coarser["30m"] == binance_30m
    assert price.price.price == btc[-1].close
    assert _sample(metrics, 'finplat_price_sink_written_total{sink="influxdb_candles"}') >= len(btc)
    assert _sample(metrics, 'finplat_price_feed_messages_total{outcome="malformed"}') == 0
    assert _sample(metrics, "finplat_price_receive_to_publish_seconds_count") >= 2 * len(btc)
    assert price.price.kind == market_pb2.EVENT_KIND_KLINE
    # Per-RPC metrics, labels in the exposition's (alphabetical) order.
    rpc = 'grpc_method="GetPrice",grpc_service="finance.market.v1.PriceService",grpc_type="UNARY"'
    assert _sample(metrics, f'grpc_server_handled_total{{grpc_code="OK",{rpc}}}') == 1
    assert _sample(metrics, f"grpc_server_handling_seconds_count{{{rpc}}}") == 1
    assert len(streamed) > len(btc) // 2
    assert [u.timestamp for u in streamed] == sorted(u.timestamp for u in streamed)
    per_symbol: dict[str, list[int]] = defaultdict(list)
    for update in published:
        per_symbol[update.symbol].append(update.timestamp)
    assert per_symbol["BTCUSDT"] == [row.open_time + MINUTE for row in btc]
    # The ETH file runs past the BTC day, so ETH goes on until the service stops.
    assert len(per_symbol["ETHUSDT"]) >= len(btc)
    assert per_symbol["ETHUSDT"] == sorted(per_symbol["ETHUSDT"])


async def test_candles_built_from_trades_equal_binance_klines(
    start_replay: StartReplay,
    kafka_settings: KafkaSettings,
    influx_settings: InfluxSettings,
    data_dir: Path,
) -> None:
    day_start, day_end = _ms("2017-08-17T00:00:00"), _ms("2017-08-18T00:00:00")
    replay = await start_replay(
        symbols=("BTCUSDT",),
        kline_first_day=date(2017, 8, 17),
        kline_last_day=date(2017, 8, 17),
        speed=0.0,
    )
    binance = _kline_rows(
        data_dir / "klines/spot/BTCUSDT/1m/BTCUSDT-1m-2017-08-17.csv.gz", day_start, day_end
    )
    feed = {"symbols": ("BTCUSDT",), "stream_kinds": ("trade",)}

    # As fast as possible: one wall second stands for an hour of exchange time once the
    # trades stop, so the minutes after the last trade close at once.
    async with price_service(
        replay, kafka_settings, influx_settings, feed, trade_candle_clock_rate=3600.0
    ) as running:

        async def day_complete() -> bool:
            return len(await running.candles("BTCUSDT", "1m", day_start, day_end)) == 1200

        await eventually_async(day_complete, 60)
        built = _as_rows(await running.candles("BTCUSDT", "1m", day_start, day_end))

    assert len(binance) == 1200
    assert sum(1 for row in binance if row.trades == 0) == 369
    assert built == binance


async def test_stores_that_go_away_catch_up_while_kafka_goes_on(
    start_replay: StartReplay,
    kafka_settings: KafkaSettings,
    influx_settings: InfluxSettings,
    data_dir: Path,
) -> None:
    start, end = _ms("2024-10-01T22:00:00"), _ms("2024-10-02T00:00:00")
    replay = await start_replay(kline_last_day=date(2024, 10, 1), start_ms=start, speed=600.0)
    btc = _kline_rows(data_dir / "klines/spot/BTCUSDT/1m/BTCUSDT-1m-2024-10-01.csv.gz", start, end)
    redis_proxy = TcpProxy("127.0.0.1", _port(RedisSettings().url))
    influx_proxy = TcpProxy("127.0.0.1", _port(InfluxSettings().url))
    await redis_proxy.enable()
    await influx_proxy.enable()
    feed = {"symbols": ("BTCUSDT",), "stream_kinds": ("kline_1m",)}

    async with price_service(
        replay,
        kafka_settings,
        influx_settings,
        feed,
        redis_url=f"redis://127.0.0.1:{redis_proxy.port}/0",
        influx_url=f"http://127.0.0.1:{influx_proxy.port}",
    ) as running:
        await eventually_async(lambda: running.service.kafka.stats.written >= 10, 30, 0.05)
        await redis_proxy.disable()
        await influx_proxy.disable()
        published_before = running.service.kafka.stats.written
        await eventually_async(
            lambda: running.service.kafka.stats.written >= published_before + 20, 30, 0.05
        )
        outage = (running.service.latest.stats.healthy, running.service.candles.stats.healthy)

        async def reported(serving: int) -> bool:
            return await running.health("finplat.price.sink.redis") == serving

        await eventually_async(lambda: reported(NOT_SERVING), 10, 0.2)
        await redis_proxy.enable()
        await influx_proxy.enable()

        async def caught_up() -> bool:
            if len(await running.candles("BTCUSDT", "1m", start, end)) != len(btc):
                return False
            try:
                latest = await running.stub.GetPrice(
                    price_service_pb2.GetPriceRequest(symbol="BTCUSDT")
                )
            except grpc.aio.AioRpcError as exc:
                # Until Redis has caught up, the price is missing or Redis is unavailable.
                if exc.code() in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE}:
                    return False
                raise
            return latest.price.price == btc[-1].close

        await eventually_async(caught_up, 90)
        await eventually_async(lambda: reported(SERVING), 10, 0.2)
        stats = running.service.candles.stats
        minutes = _as_rows(await running.candles("BTCUSDT", "1m", start, end))

    await redis_proxy.disable()
    await influx_proxy.disable()
    assert outage == (False, False)
    assert stats.dropped == 0
    assert stats.failures > 0
    assert minutes == btc


def _port(url: str) -> int:
    port = url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]
    return int(port)


def _sample(exposition: str, name: str) -> float:
    """The value of one sample in Prometheus text format."""
    for line in exposition.splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")

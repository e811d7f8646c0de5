"""The price collector: items a store refused one by one are counted as refused, not written,
candles the check refused are counted by reason, and the shard shows with its symbol count."""

from collections import Counter
from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import Metric

from finplat.core.retry import RetryPolicy
from finplat.price.adapters.binance.feed import BinanceFeed
from finplat.price.adapters.binance.settings import FeedSettings
from finplat.price.service.metrics import (
    _LATENCY_BUCKETS,
    LatencyMetrics,
    PriceCollector,
    PriceSources,
)
from finplat.price.service.sink_buffer import BufferedSink
from finplat.price.service.stream_hub import StreamHub
from tests.unit.test_metric_names import FakeProducer


async def _never_written(items: Sequence[object]) -> None:
    raise AssertionError("the collector only reads the sinks")


def _sink(name: str, written: int) -> BufferedSink[object]:
    sink: BufferedSink[object] = BufferedSink(
        name, _never_written, capacity=1, batch_size=1, retry=RetryPolicy()
    )
    sink.stats.written = written
    return sink


def _collect(
    refusals: Mapping[str, Mapping[str, int]],
    candle_rejections: Mapping[str, int],
    feed: FeedSettings | None = None,
) -> dict[str, Metric]:
    sinks = {"influxdb_ticks": _sink("influxdb_ticks", 10), "redis": _sink("redis", 4)}
    sources = PriceSources(
        BinanceFeed(feed or FeedSettings()),
        sinks,
        StreamHub(),
        FakeProducer(),
        refusals=refusals,
        candle_rejections=candle_rejections,
    )
    return {family.name: family for family in PriceCollector(sources).collect()}


def _samples(family: Metric) -> dict[tuple[str, ...], float]:
    return {tuple(sample.labels.values()): sample.value for sample in family.samples}


def test_items_refused_one_by_one_are_refused_not_written() -> None:
    refused = Counter({"store": 2, "invalid": 1})

    metrics = _collect({"influxdb_ticks": refused}, {})

    assert _samples(metrics["finplat_price_sink_written"]) == {
        ("influxdb_ticks",): 7,
        ("redis",): 4,
    }
    assert _samples(metrics["finplat_price_sink_refused"]) == {
        ("influxdb_ticks", "invalid"): 1,
        ("influxdb_ticks", "store"): 2,
    }


def test_a_sink_whose_store_refused_nothing_yet_shows_zeros() -> None:
    metrics = _collect({"influxdb_ticks": Counter()}, {})

    assert _samples(metrics["finplat_price_sink_refused"]) == {
        ("influxdb_ticks", "invalid"): 0,
        ("influxdb_ticks", "store"): 0,
    }
    assert _samples(metrics["finplat_price_sink_written"])[("influxdb_ticks",)] == 10


def test_candle_rejections_show_every_reason() -> None:
    metrics = _collect({}, Counter({"ohlc_order": 3}))

    assert _samples(metrics["finplat_price_candles_rejected"]) == {
        ("not_a_number",): 0,
        ("not_fixed_point",): 0,
        ("ohlc_order",): 3,
        ("negative_volume",): 0,
    }


def test_the_shard_shows_with_the_number_of_its_symbols() -> None:
    feed = FeedSettings(symbols=("SOLUSDT", "BTCUSDT", "ETHUSDT"), shard_index=0, shard_count=2)

    metrics = _collect({}, {}, feed)

    assert _samples(metrics["finplat_price_shard_symbols"]) == {("0", "2"): 2}


def test_latency_histograms_read_as_prometheus_clients_own() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    latency = LatencyMetrics(ours)
    reference = {
        name: Histogram(name, "reference", buckets=_LATENCY_BUCKETS, registry=theirs)
        for name in ("exchange_to_publish_seconds", "receive_to_publish_seconds")
    }
    now = 1_700_000_000_000
    # Bounds exactly (a value on a bound is in its bucket), between them, past the last one,
    # and a clock behind the exchange's (counted as 0).
    for exchange_ago, receive_ago in [(1, 0), (2, 1), (5, 3), (7_000, 250), (-4, 0), (50, 49)]:
        latency.observe(now - exchange_ago, now - receive_ago, now)
        reference["exchange_to_publish_seconds"].observe(max(0, exchange_ago) / 1000)
        reference["receive_to_publish_seconds"].observe(max(0, receive_ago) / 1000)

    def samples(registry: CollectorRegistry, prefix: str) -> dict[tuple[str, str], float]:
        return {
            (s.name.removeprefix(prefix), s.labels.get("le", "")): s.value
            for family in registry.collect()
            for s in family.samples
            if not s.name.endswith("_created")
        }

    assert samples(ours, "finplat_price_") == samples(theirs, "")
    assert samples(ours, "finplat_price_")[("exchange_to_publish_seconds_count", "")] == 6

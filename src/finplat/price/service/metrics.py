"""Prometheus metrics of the price service.

Counters live as plain integers on the objects that count (feed, sinks, hub, producer) so the
hot path pays nothing; this collector reads them when Prometheus scrapes. Latency, a
distribution, is counted per bucket as it happens, also in plain integers.
"""

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from finplat.kafka.producer import PriceUpdateProducer
from finplat.price.adapters.binance.feed import BinanceFeed
from finplat.price.adapters.errors import Refusal
from finplat.price.domain.candle_check import CandleFault
from finplat.price.service.sink_buffer import BufferedSink
from finplat.price.service.stream_hub import StreamHub

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass
class PriceSources:
    """Everything the collector reads."""

    feed: BinanceFeed
    sinks: Mapping[str, BufferedSink[Any]]
    hub: StreamHub
    producer: PriceUpdateProducer
    # Per sink name, the items its store refused one by one, by `Refusal` value (the InfluxDB
    # store's `refused_ticks` and `refused_candles`); the sink counted them as written.
    refusals: Mapping[str, Mapping[str, int]]
    # The pipeline's `rejected_candles`, by `CandleFault` value.
    candle_rejections: Mapping[str, int]


class PriceCollector(Collector):
    """Reads the counters of the running service at scrape time."""

    def __init__(self, sources: PriceSources) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        yield from self._feed()
        yield from self._sinks()
        yield self._candle_rejections()
        hub = self._sources.hub
        yield _gauge(
            "finplat_price_stream_subscribers", "StreamPrices subscribers", hub.subscribers
        )
        yield _counter(
            "finplat_price_stream_cut_off", "Subscribers cut off as too slow", hub.cut_off
        )
        producer = self._sources.producer
        deliveries = CounterMetricFamily(
            "finplat_price_kafka_deliveries",
            "Kafka delivery reports: delivered (acknowledged by the brokers) or failed (not"
            " delivered within delivery.timeout.ms, lost)",
            labels=["result"],
        )
        deliveries.add_metric(["delivered"], producer.delivered)
        deliveries.add_metric(["failed"], producer.failed)
        yield deliveries
        yield _gauge(
            "finplat_price_kafka_pending", "Messages not yet acknowledged", producer.pending()
        )

    def _feed(self) -> Iterable[Metric]:
        feed = self._sources.feed
        stats = feed.stats
        messages = CounterMetricFamily(
            "finplat_price_feed_messages",
            "Feed frames by outcome: updates and candles passed on; malformed (not JSON or not"
            " Binance's shape) and unknown (a stream we did not ask for) rejected; duplicates"
            " and out_of_order (older than the newest seen) not passed on again; dropped: price"
            " updates lost because the hand-over queue to the sinks was full",
            labels=["outcome"],
        )
        for outcome in ("updates", "candles", "malformed", "unknown", "duplicates"):
            messages.add_metric([outcome], getattr(stats, outcome))
        messages.add_metric(["out_of_order"], stats.out_of_order)
        messages.add_metric(["dropped"], stats.dropped_updates)
        yield messages
        yield _counter("finplat_price_feed_frames", "Frames received", stats.frames)
        settings = feed.settings
        shard = GaugeMetricFamily(
            "finplat_price_shard_symbols",
            "Symbols this instance ingests: its shard's share of the symbols followed; labels:"
            " its shard index and the number of shards",
            labels=["shard", "shards"],
        )
        shard.add_metric(
            [str(settings.shard_index), str(settings.shard_count)], len(settings.owned)
        )
        yield shard
        reconnects = sum(group.reconnects for group in feed.groups)
        yield _counter("finplat_price_feed_reconnects", "Feed reconnections", reconnects)
        yield _counter(
            "finplat_price_feed_stalls",
            "Connections replaced because no frame arrived within the stall timeout",
            sum(group.stalls for group in feed.groups),
        )
        yield _counter("finplat_price_feed_gaps", "Gaps detected after reconnects", stats.gaps)
        yield _counter(
            "finplat_price_feed_backfilled_candles",
            "Candles fetched over REST to fill gaps",
            stats.backfilled_candles,
        )
        yield _counter(
            "finplat_price_feed_backfill_failures",
            "Gap backfills that failed: their candles stay missing until `finplat price"
            " backfill` fetches them",
            stats.backfill_failures,
        )
        yield _counter(
            "finplat_price_feed_late_candles",
            "Kline candles that arrived after their minute was stored or handed to a backfill;"
            " not stored twice",
            stats.late_candles,
        )

    def _sinks(self) -> Iterable[Metric]:
        written = CounterMetricFamily(
            "finplat_price_sink_written", "Items written per sink", labels=["sink"]
        )
        dropped = CounterMetricFamily(
            "finplat_price_sink_dropped",
            "Items dropped per sink: buffer full (oldest first), or a whole batch the store"
            " refused",
            labels=["sink"],
        )
        refused = CounterMetricFamily(
            "finplat_price_sink_refused",
            "Items a store refused one by one and left out of a batch it otherwise wrote,"
            " never stored; reason: invalid (failed our checks before the write) or store"
            " (refused by the store itself)",
            labels=["sink", "reason"],
        )
        failures = CounterMetricFamily(
            "finplat_price_sink_failures", "Failed write attempts per sink", labels=["sink"]
        )
        buffered = GaugeMetricFamily(
            "finplat_price_sink_buffered", "Items waiting per sink", labels=["sink"]
        )
        healthy = GaugeMetricFamily(
            "finplat_price_sink_up", "1 while the sink writes", labels=["sink"]
        )
        batch = GaugeMetricFamily(
            "finplat_price_sink_last_batch_seconds", "Duration of the last write", labels=["sink"]
        )
        for name, sink in self._sources.sinks.items():
            counts = self._sources.refusals.get(name, {})
            # Read key by key, not iterated: the event loop may add a key during the scrape.
            by_reason = {reason.value: counts.get(reason.value, 0) for reason in Refusal}
            written.add_metric([name], sink.stats.written - sum(by_reason.values()))
            if name in self._sources.refusals:
                for reason, count in by_reason.items():
                    refused.add_metric([name, reason], count)
            dropped.add_metric([name], sink.stats.dropped + sink.stats.rejected)
            failures.add_metric([name], sink.stats.failures)
            buffered.add_metric([name], len(sink))
            healthy.add_metric([name], 1 if sink.stats.healthy else 0)
            batch.add_metric([name], sink.stats.last_batch_s)
        yield from (written, dropped, refused, failures, buffered, healthy, batch)

    def _candle_rejections(self) -> Metric:
        rejected = CounterMetricFamily(
            "finplat_price_candles_rejected",
            "Candles refused before the candle store, never stored; reason: not_a_number,"
            " not_fixed_point (beyond int64 once scaled by 10^8, or over 8 decimals),"
            " ohlc_order (open or close outside low..high), negative_volume",
            labels=["reason"],
        )
        counts = self._sources.candle_rejections
        # Every reason from the start, zeros included, so rate() sees the first rejection.
        for fault in CandleFault:
            rejected.add_metric([fault.value], counts.get(fault.value, 0))
        return rejected


def _counter(name: str, documentation: str, value: float) -> Metric:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> Metric:
    return GaugeMetricFamily(name, documentation, value=value)


class _Distribution:
    """Counts per latency bucket (the last one past every bound) and their sum."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def add(self, value: float) -> None:
        # A value equal to a bound is in that bound's bucket (Prometheus' `le`).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def family(self, name: str, documentation: str) -> Metric:
        cumulative = list(accumulate(self.counts))
        buckets = [(_bound(b), c) for b, c in zip(self.bounds, cumulative, strict=False)]
        return HistogramMetricFamily(
            name, documentation, buckets=[*buckets, ("+Inf", cumulative[-1])], sum_value=self.total
        )


def _bound(value: float) -> str:
    # As prometheus_client writes a bucket's `le`: 1 is "1.0".
    return repr(float(value))


class LatencyMetrics(Collector):
    """End-to-end latency of each update, counted when it is published.

    Counted here rather than by prometheus_client's Histogram, whose `observe` takes a lock and
    walks the buckets in Python: two of them cost 4.6 % of the price service's time under the
    ingest bench. A bisect and two additions on the event loop's thread do the same work; the
    scrape reads them from its own thread (the GIL makes each increment whole)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._exchange_to_publish = _Distribution(_LATENCY_BUCKETS)
        self._receive_to_publish = _Distribution(_LATENCY_BUCKETS)
        registry.register(self)

    def observe(self, exchange_ms: int, receive_ms: int, now_ms: int) -> None:
        """Record one update's latencies (negative clock skew counts as zero)."""
        self._exchange_to_publish.add(max(0, now_ms - exchange_ms) / 1000)
        self._receive_to_publish.add(max(0, now_ms - receive_ms) / 1000)

    def collect(self) -> Iterator[Metric]:
        yield self._exchange_to_publish.family(
            "finplat_price_exchange_to_publish_seconds", "Exchange event time to publication"
        )
        yield self._receive_to_publish.family(
            "finplat_price_receive_to_publish_seconds", "Our receive time to publication"
        )

"""Every metric the alert rules and the dashboard query is one our services export: renaming a
metric in code without its queries breaks the build, not a dashboard in the middle of the night."""

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from finplat.backtest.domain.stats import StreamStats
from finplat.backtest.service.metrics import BacktestCollector, BacktestSources, CountingResults
from finplat.core.retry import RetryPolicy
from finplat.gateway.service.metrics import GatewayMetrics
from finplat.kafka.producer import PriceUpdateProducer
from finplat.price.adapters.binance.feed import BinanceFeed
from finplat.price.adapters.binance.settings import FeedSettings
from finplat.price.service.metrics import LatencyMetrics, PriceCollector, PriceSources
from finplat.price.service.sink_buffer import BufferedSink
from finplat.price.service.stream_hub import StreamHub
from tests.paths import REPO_ROOT
from tests.unit.backtest.service_support import FakeClock
from tests.unit.backtest.test_metrics_endpoint import FakeConsumer, FakeResults, FakeStatsView

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "finplat.json"
# Every metric of ours carries the prefix; label names and PromQL functions never do.
OUR_NAME = re.compile(r"\bfinplat_[a-z0-9_]+")
# The sample names a family of each type exposes and PromQL can select.
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


class FakeProducer(PriceUpdateProducer):
    """The producer's counters without a librdkafka client (which would dial a broker)."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0

    def pending(self) -> int:
        return 0


async def _never_written(items: Sequence[object]) -> None:
    raise AssertionError("the collector only reads the sinks")


def _price_metrics() -> Iterable[Metric]:
    sink: BufferedSink[object] = BufferedSink(
        "redis", _never_written, capacity=1, batch_size=1, retry=RetryPolicy()
    )
    sources = PriceSources(
        BinanceFeed(FeedSettings()), {"redis": sink}, StreamHub(), FakeProducer(), {}, {}
    )
    registry = CollectorRegistry()
    LatencyMetrics(registry)
    return [*PriceCollector(sources).collect(), *registry.collect()]


def _backtest_metrics() -> Iterable[Metric]:
    sources = BacktestSources(
        FakeStatsView(StreamStats(FakeClock(), 10)),
        CountingResults(FakeResults()),
        FakeConsumer(running=True, healthy=True),
    )
    return BacktestCollector(sources).collect()


def _exported() -> set[str]:
    families = [*_price_metrics(), *_backtest_metrics(), *GatewayMetrics().registry.collect()]
    return {family.name + suffix for family in families for suffix in SUFFIXES.get(family.type, ())}


def _alert_queries() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _alert_test_series() -> list[str]:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    return [series["series"] for test in tests for series in test["input_series"]]


def _dashboard_queries(panels: list[dict[str, Any]]) -> list[str]:
    return [
        query
        for panel in panels
        for query in [
            *(target["expr"] for target in panel.get("targets", [])),
            # Collapsed rows keep their panels inside them.
            *_dashboard_queries(panel.get("panels", [])),
        ]
    ]


def _names(queries: Iterable[str]) -> set[str]:
    return {name for query in queries for name in OUR_NAME.findall(query)}


def test_the_collectors_export_what_the_queries_need() -> None:
    exported = _exported()

    # Guards the test itself: a collector that yields nothing would make every query "unknown".
    assert {"finplat_price_feed_frames_total", "finplat_backtest_runs_total"} <= exported
    assert "finplat_gateway_http_request_duration_seconds_bucket" in exported


def test_alert_rules_query_only_exported_metrics() -> None:
    used = _names(_alert_queries())

    assert len(used) >= 7
    assert used - _exported() == set()


def test_alert_rule_tests_feed_only_exported_metrics() -> None:
    used = _names(_alert_test_series())

    assert used - _exported() == set()


def test_dashboard_queries_only_exported_metrics() -> None:
    used = _names(_dashboard_queries(json.loads(DASHBOARD.read_text())["panels"]))

    assert len(used) >= 20
    assert used - _exported() == set()

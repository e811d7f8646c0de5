"""The backtest service's Prometheus endpoint, read over HTTP as Prometheus reads it."""

from dataclasses import dataclass, field
from typing import Protocol

import httpx
import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.domain.stats import StatsSnapshot, StreamStats
from finplat.backtest.domain.update_checks import RejectReason
from finplat.backtest.errors import StoreError
from finplat.backtest.service.consumer import PartitionLag
from finplat.backtest.service.metrics import (
    BacktestCollector,
    BacktestSources,
    CountingResults,
    metrics_server,
)
from finplat.stack.process import free_ports
from tests.unit.backtest.service_support import FakeClock, update

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Snapshots(Protocol):
    def snapshot(self) -> StatsSnapshot: ...


@dataclass
class FakeStatsView:
    """A consumer's statistics view over anything with a snapshot: a `StreamStats`, or a
    `BatchProcessor`, whose snapshot is the group's."""

    stats: Snapshots
    lags: tuple[PartitionLag, ...] = ()

    def snapshot(self) -> tuple[StatsSnapshot, tuple[PartitionLag, ...]]:
        return self.stats.snapshot(), self.lags


@dataclass
class FakeConsumer:
    running: bool
    healthy: bool


@dataclass
class FakeResults:
    """Keeps what it is given; `fail` makes every write fail as a broken disk would."""

    backtests: list[backtest_pb2.Backtest] = field(default_factory=list)
    sweeps: list[backtest_pb2.Sweep] = field(default_factory=list)
    walk_forwards: list[backtest_service_pb2.WalkForward] = field(default_factory=list)
    sweep_rows: dict[tuple[str, int], pa.Table] = field(default_factory=dict)
    fail: bool = False

    async def add_backtest(self, backtest: backtest_pb2.Backtest) -> None:
        if self.fail:
            raise StoreError("disk full")
        self.backtests.append(backtest)

    async def get_backtest(self, run_id: str) -> backtest_pb2.Backtest:
        return next(b for b in self.backtests if b.id == run_id)

    async def list_backtests(
        self, page_size: int, page_token: str = "", strategy: str = "", symbol: str = ""
    ) -> tuple[list[backtest_pb2.Backtest], str]:
        return self.backtests[:page_size], ""

    async def add_sweep(self, sweep: backtest_pb2.Sweep) -> None:
        if self.fail:
            raise StoreError("disk full")
        self.sweeps.append(sweep)

    async def get_sweep(self, sweep_id: str) -> backtest_pb2.Sweep:
        return next(s for s in self.sweeps if s.id == sweep_id)

    async def add_sweep_rows(self, sweep_id: str, piece: int, rows: pa.Table) -> None:
        self.sweep_rows[sweep_id, piece] = rows

    async def sweep_row_pieces(self, sweep_id: str) -> list[int]:
        return sorted(piece for (kept, piece) in self.sweep_rows if kept == sweep_id)

    async def get_sweep_rows(self, sweep_id: str, piece: int) -> pa.Table:
        return self.sweep_rows[sweep_id, piece]

    async def add_walk_forward(self, walk_forward: backtest_service_pb2.WalkForward) -> None:
        self.walk_forwards.append(walk_forward)

    async def get_walk_forward(self, walk_forward_id: str) -> backtest_service_pb2.WalkForward:
        return next(w for w in self.walk_forwards if w.id == walk_forward_id)


def _stats() -> StreamStats:
    stats = StreamStats(FakeClock(), dedup_capacity=100)
    for event_id, symbol in [("1", "BTCUSDT"), ("2", "BTCUSDT"), ("3", "ETHUSDT")]:
        stats.observe(update(event_id, symbol=symbol))
    stats.observe(update("1", symbol="BTCUSDT"))  # a redelivery
    stats.reject(RejectReason.UNDECODABLE)
    stats.reject(RejectReason.SYMBOL)
    stats.dead_lettered = 2
    return stats


async def _scrape(sources: BacktestSources) -> Samples:
    registry = CollectorRegistry()
    registry.register(BacktestCollector(sources))
    async with (
        metrics_server(registry, "127.0.0.1", free_ports()[0]) as port,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


@pytest.mark.asyncio
async def test_endpoint_exports_the_consumer_statistics_lag_and_runs() -> None:
    lags = (PartitionLag("price-updates", 0, 90, 100), PartitionLag("price-updates", 2, 7, 7))
    runs = CountingResults(FakeResults())
    await runs.add_backtest(backtest_pb2.Backtest(id="b1"))
    await runs.add_backtest(backtest_pb2.Backtest(id="b2"))
    await runs.add_sweep(backtest_pb2.Sweep(id="s1"))
    sources = BacktestSources(
        FakeStatsView(_stats(), lags), runs, FakeConsumer(running=True, healthy=True)
    )

    samples = await _scrape(sources)

    expected = {
        ("finplat_backtest_consumer_up", ()): 1,
        ("finplat_backtest_messages_total", ()): 3,
        ("finplat_backtest_symbol_messages_total", (("symbol", "BTCUSDT"),)): 2,
        ("finplat_backtest_symbol_messages_total", (("symbol", "ETHUSDT"),)): 1,
        ("finplat_backtest_decode_errors_total", ()): 2,
        ("finplat_backtest_dead_lettered_total", ()): 2,
        ("finplat_backtest_rejected_messages_total", (("reason", "undecodable"),)): 1,
        ("finplat_backtest_rejected_messages_total", (("reason", "invalid_symbol"),)): 1,
        ("finplat_backtest_rejected_messages_total", (("reason", "invalid_price"),)): 0,
        ("finplat_backtest_duplicates_total", ()): 1,
        ("finplat_backtest_consumer_lag", (("partition", "0"), ("topic", "price-updates"))): 10,
        ("finplat_backtest_consumer_lag", (("partition", "2"), ("topic", "price-updates"))): 0,
        ("finplat_backtest_runs_total", (("kind", "backtest"),)): 2,
        ("finplat_backtest_runs_total", (("kind", "sweep"),)): 1,
    }
    assert {key: samples.get(key) for key in expected} == expected


@pytest.mark.asyncio
async def test_stream_counters_wait_until_the_consumer_has_restored_them() -> None:
    sources = BacktestSources(
        FakeStatsView(_stats()),
        CountingResults(FakeResults()),
        FakeConsumer(running=False, healthy=False),
    )

    samples = await _scrape(sources)

    assert {name for name, _ in samples} == {
        "finplat_backtest_consumer_up",
        "finplat_backtest_runs_total",
    }
    assert samples[("finplat_backtest_consumer_up", ())] == 0


@pytest.mark.asyncio
async def test_without_a_consumer_the_statistics_are_exported_empty() -> None:
    sources = BacktestSources(
        FakeStatsView(StreamStats(FakeClock(), 10)), CountingResults(FakeResults()), None
    )

    samples = await _scrape(sources)

    assert ("finplat_backtest_consumer_up", ()) not in samples
    assert samples[("finplat_backtest_messages_total", ())] == 0


@pytest.mark.asyncio
async def test_runs_the_store_failed_to_keep_are_not_counted() -> None:
    store = FakeResults(fail=True)
    runs = CountingResults(store)

    with pytest.raises(StoreError):
        await runs.add_backtest(backtest_pb2.Backtest(id="b1"))
    with pytest.raises(StoreError):
        await runs.add_sweep(backtest_pb2.Sweep(id="s1"))

    assert (runs.backtests, runs.sweeps) == (0, 0)


@pytest.mark.asyncio
async def test_port_zero_serves_nothing() -> None:
    async with metrics_server(CollectorRegistry(), "127.0.0.1", 0) as port:
        assert port == 0

"""Prometheus metrics of the backtest service.

As in the price service, counters stay plain integers on the objects that count (the stream
statistics, the consumer's lag, the stored runs) and this collector reads them when Prometheus
scrapes, so the consumer's hot path pays nothing.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.domain.update_checks import RejectReason
from finplat.backtest.service.api import Results, StatsView


class ConsumerState(Protocol):
    """What the collector reads of the consumer (`StatsConsumer`) besides its statistics."""

    running: bool

    @property
    def healthy(self) -> bool: ...


class CountingResults:
    """The result store, counting what it stores: a stored backtest or sweep is one that ran."""

    def __init__(self, store: Results) -> None:
        self._store = store
        self.backtests = 0
        self.sweeps = 0

    async def add_backtest(self, backtest: backtest_pb2.Backtest) -> None:
        await self._store.add_backtest(backtest)
        self.backtests += 1

    async def get_backtest(self, run_id: str) -> backtest_pb2.Backtest:
        return await self._store.get_backtest(run_id)

    async def list_backtests(
        self, page_size: int, page_token: str = "", strategy: str = "", symbol: str = ""
    ) -> tuple[list[backtest_pb2.Backtest], str]:
        return await self._store.list_backtests(page_size, page_token, strategy, symbol)

    async def add_sweep(self, sweep: backtest_pb2.Sweep) -> None:
        await self._store.add_sweep(sweep)
        self.sweeps += 1

    async def get_sweep(self, sweep_id: str) -> backtest_pb2.Sweep:
        return await self._store.get_sweep(sweep_id)

    async def add_sweep_rows(self, sweep_id: str, piece: int, rows: pa.Table) -> None:
        await self._store.add_sweep_rows(sweep_id, piece, rows)

    async def sweep_row_pieces(self, sweep_id: str) -> list[int]:
        return await self._store.sweep_row_pieces(sweep_id)

    async def get_sweep_rows(self, sweep_id: str, piece: int) -> pa.Table:
        return await self._store.get_sweep_rows(sweep_id, piece)

    async def add_walk_forward(self, walk_forward: backtest_service_pb2.WalkForward) -> None:
        await self._store.add_walk_forward(walk_forward)

    async def get_walk_forward(self, walk_forward_id: str) -> backtest_service_pb2.WalkForward:
        return await self._store.get_walk_forward(walk_forward_id)


@dataclass
class BacktestSources:
    """Everything the collector reads."""

    stats: StatsView
    runs: CountingResults
    # None when the consumer is disabled: its statistics then stay empty.
    consumer: ConsumerState | None


class BacktestCollector(Collector):
    """Reads the counters of the running service at scrape time."""

    def __init__(self, sources: BacktestSources) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        consumer = self._sources.consumer
        if consumer is not None:
            yield GaugeMetricFamily(
                "finplat_backtest_consumer_up",
                "1 while the consumer polls with a broker reachable",
                value=1 if consumer.healthy else 0,
            )
        # Until the consumer has restored its persisted totals they read 0; exporting that 0
        # would look like a counter reset followed by a jump, a spike in every rate().
        if consumer is None or consumer.running:
            yield from self._stream()
        runs = CounterMetricFamily(
            "finplat_backtest_runs", "Backtests and sweeps run and stored", labels=["kind"]
        )
        runs.add_metric(["backtest"], self._sources.runs.backtests)
        runs.add_metric(["sweep"], self._sources.runs.sweeps)
        yield runs

    def _stream(self) -> Iterator[Metric]:
        snapshot, lags = self._sources.stats.snapshot()
        yield CounterMetricFamily(
            "finplat_backtest_messages",
            "Price updates counted (duplicates and undecodable ones excluded)",
            value=snapshot.total_messages,
        )
        per_symbol = CounterMetricFamily(
            "finplat_backtest_symbol_messages",
            "Price updates counted per symbol",
            labels=["symbol"],
        )
        for symbol in snapshot.symbols:
            per_symbol.add_metric([symbol.symbol], symbol.count)
        yield per_symbol
        yield CounterMetricFamily(
            "finplat_backtest_decode_errors",
            "Messages not counted because they could not be decoded or failed validation",
            value=snapshot.decode_errors,
        )
        rejected = CounterMetricFamily(
            "finplat_backtest_rejected_messages",
            "Messages dead-lettered instead of counted, by reason: undecodable, or the field"
            " that failed validation",
            labels=["reason"],
        )
        # Every reason from the start, zeros included, so rate() sees the first rejection.
        for reason in RejectReason:
            rejected.add_metric([reason.value], snapshot.rejected.get(reason.value, 0))
        yield rejected
        yield CounterMetricFamily(
            "finplat_backtest_dead_lettered",
            "Messages sent to the dead-letter topic",
            value=snapshot.dead_lettered,
        )
        yield CounterMetricFamily(
            "finplat_backtest_duplicates",
            "Redelivered price updates not counted again",
            value=snapshot.duplicates,
        )
        lag = GaugeMetricFamily(
            "finplat_backtest_consumer_lag",
            "Messages behind the end of each assigned partition",
            labels=["topic", "partition"],
        )
        for partition in lags:
            lag.add_metric([partition.topic, str(partition.partition)], partition.lag)
        yield lag


@asynccontextmanager
async def metrics_server(registry: CollectorRegistry, host: str, port: int) -> AsyncIterator[int]:
    """Serve `/metrics` on its own thread while the block runs; yields the bound port.

    Port 0 serves nothing (and yields 0), as `FINPLAT_BACKTEST_METRICS_PORT=0` disables it.
    """
    if not port:
        yield 0
        return
    server, thread = start_http_server(port, host, registry=registry)
    try:
        yield server.server_port
    finally:
        # shutdown() waits for the serving loop's next poll (up to 0.5 s): not on the event loop.
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join()

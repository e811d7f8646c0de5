"""Operations of two instances of the service on one database (here a SQLite file, each with
stores of its own): each operation runs on one instance, which holds its lease; the other
follows and cancels it through the store, takes it over once its lease expires, and an
instance that lost a lease stops without writing."""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from typing_extensions import override

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.history import LocalKlineBars
from finplat.backtest.adapters.operation_store import OperationStore, Unfinished
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.adapters.sweep_executor import LocalExecutor, OnChunk, SweepExecutor
from finplat.backtest.domain.strategies import Params
from finplat.backtest.domain.sweep import SweepJob
from finplat.backtest.errors import StoreError
from finplat.backtest.service.operations import Operations
from finplat.backtest.service.runs import Limits
from tests.paths import market_data_dir
from tests.unit.backtest.api_harness import run_request

pytestmark = pytest.mark.asyncio

# Renewed, and the store searched for expired leases, every half second.
_LEASE_S = 1.5
_OPERATIONS_LOG = "finplat.backtest.service.operations"


class PacedExecutor:
    """One chunk at a time, each after a pause (a stop ends the pause): a sweep that lasts long
    enough to be looked at, while a stop still ends it at once."""

    def __init__(self, pause_s: float) -> None:
        self._pause_s = pause_s
        self._chunk = LocalExecutor(1)

    def parallelism(self) -> int:
        return 1

    def run_chunks(
        self,
        job: SweepJob,
        chunks: Mapping[int, Sequence[Params]],
        stop: threading.Event,
        on_chunk: OnChunk,
    ) -> None:
        for index in sorted(chunks):
            if stop.wait(self._pause_s):
                return
            self._chunk.run_chunks(job, {index: chunks[index]}, stop, on_chunk)

    def close(self) -> None:
        pass


class StalledLeasesStore(OperationStore):
    """An instance whose lease round stalls while `stalled` is set (a long pause of that part,
    a lost connection), while its chunks are still written."""

    stalled = False

    @override
    async def claim_unfinished(self, owner: str, now_ms: int, lease_ms: int) -> list[Unfinished]:
        if self.stalled:
            raise StoreError("stalled")
        return await super().claim_unfinished(owner, now_ms, lease_ms)

    @override
    async def renew(
        self, owner: str, names: Collection[str], now_ms: int, lease_ms: int
    ) -> set[str]:
        if self.stalled:
            raise StoreError("stalled")
        return await super().renew(owner, names, now_ms, lease_ms)


@contextlib.asynccontextmanager
async def _instance(
    path: Path,
    owner: str,
    executor: SweepExecutor | None = None,
    store_type: type[OperationStore] = OperationStore,
) -> AsyncIterator[tuple[Operations, OperationStore]]:
    """An instance's operations on the results file in ``path``, started as the service
    starts them (`resume`); and its operation store."""
    store = await store_type.open(path / "results.sqlite3")
    results = await ResultStore.open(path / "results.sqlite3")
    bars = LocalKlineBars(market_data_dir())
    limits = Limits(max_bars=100_000)
    operations = Operations(
        store, results, bars, limits, executor=executor, owner=owner, lease_s=_LEASE_S
    )
    try:
        await operations.resume()
        yield operations, store
    finally:
        await operations.close()
        await store.close()
        await results.close()


def _request() -> backtest_service_pb2.StartSweepRequest:
    """fast 1..20 x slow 2..40 over one day: 590 combinations, in 197 chunks."""
    base = run_request(end_ms=run_request().data.start_time.ToMilliseconds() + 86_400_000)
    sweep = backtest_service_pb2.RunSweepRequest(
        strategy="sma_crossover",
        grid={"fast": backtest_pb2.ParameterRange(start=1, stop=20, step=1),
              "slow": backtest_pb2.ParameterRange(start=2, stop=40, step=1)},
        data=base.data, config=base.config, rank_by="sharpe",
    )  # fmt: skip
    return backtest_service_pb2.StartSweepRequest(sweep=sweep)


def _done(operation: Any) -> int:
    progress = backtest_service_pb2.SweepProgress()
    assert operation.metadata.Unpack(progress)
    return progress.done_combinations


def _results(operation: Any) -> list[tuple[dict[str, float], backtest_pb2.Metrics]]:
    sweep = backtest_pb2.Sweep()
    assert operation.response.Unpack(sweep)
    return [(dict(r.parameters), r.metrics) for r in sweep.results]


def _messages(caplog: pytest.LogCaptureFixture, message: str) -> list[str]:
    """The operations named by the log records of ``message``."""
    return [getattr(r, "operation", "") for r in caplog.records if r.getMessage() == message]


async def _watched(operations: Operations, name: str, count: int) -> list[Any]:
    """The first ``count`` states `watch` gives of operation ``name``."""
    seen: list[Any] = []
    async for operation in operations.watch(name):
        seen.append(operation)
        if len(seen) == count:
            return seen
    raise AssertionError(f"the watch ended after {len(seen)}")


async def test_the_instance_that_started_it_runs_it_and_the_other_follows_and_cancels_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, _OPERATIONS_LOG)
    async with (
        _instance(tmp_path, "a", PacedExecutor(0.05)) as (a, _),
        _instance(tmp_path, "b") as (b, _),
    ):
        started = await a.start(_request())
        seen = [_done(operation) for operation in await _watched(b, started.name, 3)]
        # Rounds of both pass: the operation stays where it runs.
        await asyncio.sleep(_LEASE_S)
        asked = time.monotonic()
        await b.cancel(started.name)
        ended = await b.wait(started.name, 5)
        took = time.monotonic() - asked
        seen_by_a = await a.get(started.name)

    assert seen == sorted(set(seen))  # growing, each change once
    assert ended.done
    assert ended.error.code == grpc.StatusCode.CANCELLED.value[0]
    assert 0 < _done(ended) < 590
    # The owner reads the request at its next round (a third of a lease); the waiter, the end
    # at its next read of the store.
    assert took < _LEASE_S / 3 + 1.5
    assert seen_by_a == ended
    assert _messages(caplog, "operation resumed") == []


async def test_an_operation_whose_lease_expired_is_taken_over_and_its_old_owner_stops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, _OPERATIONS_LOG)
    request = _request()
    async with (
        _instance(tmp_path, "a", PacedExecutor(0.05), StalledLeasesStore) as (a, a_store),
        _instance(tmp_path, "b") as (b, _),
    ):
        started = await a.start(request)
        before = _done((await _watched(b, started.name, 2))[-1])
        assert isinstance(a_store, StalledLeasesStore)
        a_store.stalled = True
        stalled = time.monotonic()
        ended = await b.wait(started.name, 10)
        took = time.monotonic() - stalled
        seen_by_a = await a.get(started.name)
        again = await b.wait((await b.start(request)).name, 10)

    assert 0 < before < 590
    assert ended.done
    assert not ended.HasField("error")
    assert _done(ended) == 590
    # Taken over at the first round of b after the lease expired; run on b's own threads.
    assert took < _LEASE_S + _LEASE_S / 3 + 2.0
    assert _messages(caplog, "operation resumed") == [started.name]
    # a stopped it at its first chunk write after b took it over, and answers from the store.
    assert _messages(caplog, "operation stopped here: it is no longer this instance's") == [
        started.name
    ]
    assert seen_by_a == ended
    assert _results(ended) == _results(again)


async def test_an_instance_that_lost_its_leases_stops_those_operations_without_writing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, _OPERATIONS_LOG)
    async with _instance(tmp_path, "a", PacedExecutor(0.05)) as (a, _):
        running = await a.start(_request())
        waiting = await a.start(_request())  # its turn comes after the first
        other = await OperationStore.open(tmp_path / "results.sqlite3")
        # An instance whose clock is an hour ahead: to it, every lease has expired.
        later = time.time_ns() // 1_000_000 + 3_600_000
        taken = await other.claim_unfinished("other", later, 1_000)
        at_takeover = [await other.get(op.name) for op in (running, waiting)]
        chunks = await other.chunks(running.name)
        # a finds out at its next chunk write (the running one) or round (the waiting one).
        ended = [await a.wait(op.name, _LEASE_S) for op in (running, waiting)]
        after = [await other.get(op.name) for op in (running, waiting)]
        chunks_after = await other.chunks(running.name)
        await other.close()

    assert [kept.operation.name for kept in taken] == [running.name, waiting.name]
    assert [op.done for op in ended] == [False, False]
    assert sorted(_messages(caplog, "operation stopped here: it is no longer this instance's")) == (
        sorted([running.name, waiting.name])
    )
    assert after == at_takeover
    assert chunks_after.keys() == chunks.keys()

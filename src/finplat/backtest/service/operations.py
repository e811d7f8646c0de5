"""Sweeps and walk-forwards as long-running operations (AIP-151): started at once, computed
in the background, kept across restarts.

StartSweep checks the request (a bad one is refused there and then, as RunSweep would), stores
the operation and returns it; a task then fetches the bars and runs the combinations in
chunks on the service's executor (`FINPLAT_BACKTEST_SWEEP_EXECUTOR`: its own threads, or a
Ray cluster). Each finished chunk is stored, and only then counted, so a restarted service
resumes every unfinished operation from the chunks it kept. Progress (done and total
combinations, best so far, elapsed) is the operation's `SweepProgress` metadata, updated as
each chunk finishes and pushed to watchers. One operation computes at a time; the others wait
their turn (their progress stands still), and a cancel ends a waiting one at once.

A walk-forward (StartWalkForward) runs the same way, its progress the folds done; its chunks
are its sweeps (the whole period's, then each fold's in-sample one), so a restart reruns only
the out-of-sample backtests of the folds it had finished.

A cancel stops the work (threads finish the chunks they compute and drop them; a Ray cluster's
tasks are cancelled) and ends the operation with CANCELLED; a shutdown stops it the same way
but leaves it unfinished, to resume.

Instances sharing a database (PostgreSQL) run each operation once: the one that runs it holds
its lease in the store (see `operation_store`), renewed every third of a lease. In the same
round each instance takes over the unfinished operations whose lease expired (a dead
instance's) and cancels its own operations whose cancel was asked of another instance. Any
instance answers for any operation: Get reads the store, Cancel sets the flag the owner reads,
Wait and Watch follow the store until the operation is done. An instance that lost a lease (it
stalled past it and was taken over) stops that operation without writing anything more. With a
SQLite file, one instance holds every lease.
"""

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from google.longrunning import operations_pb2  # type: ignore[import-untyped]
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import status_pb2  # type: ignore[import-untyped]

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.operation_store import LeaseLostError, OperationStore, Unfinished
from finplat.backtest.adapters.sweep_executor import LocalExecutor, SweepExecutor, split
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.strategies import Params
from finplat.backtest.domain.sweep import SweepPlan, expand_grid, plan_sweep, rank_key
from finplat.backtest.domain.walk_forward import FoldLayout, walk_forward
from finplat.backtest.errors import StoreError
from finplat.backtest.service import convert, runs, walk_forwards
from finplat.backtest.service.ids import new_id
from finplat.backtest.service.validation import DataQuery, RequestError

logger = logging.getLogger(__name__)

PREFIX = "operations/"
# Watchers get at most ten updates a second: progress moves per chunk, which can be hundreds a
# second, while a progress bar needs a few.
_WATCH_INTERVAL_S = 0.1
# How often a wait or watch of an operation another instance runs reads it from the store (its
# owner stores its progress with each chunk).
_POLL_S = 0.5
# Chunks an operation is cut into (fewer when it has fewer combinations): each is a row and a
# durable write, and what a crash can lose at most.
_CHUNKS = 200
# Waits between tries of bars the price service cannot give for now.
_RETRY_FIRST_S, _RETRY_MAX_S = 1.0, 30.0


class ResultSink(runs.SweepRowSink, Protocol):
    """Where finished sweeps (and their whole tables) and walk-forwards are stored (the
    result store)."""

    async def add_sweep(self, sweep: backtest_pb2.Sweep) -> None: ...
    async def add_walk_forward(self, walk_forward: backtest_service_pb2.WalkForward) -> None: ...


def _status(code: grpc.StatusCode, message: str) -> Any:
    return status_pb2.Status(code=code.value[0], message=message)


@dataclass
class _Running:
    """An operation with a task working on it, and what its watchers wait for."""

    operation: Any  # google.longrunning.Operation, its metadata kept in `progress`
    progress: Any  # SweepProgress or WalkForwardProgress
    elapsed_before_s: float
    # Set to stop the work: read by the executor between chunks; the asyncio twin wakes a task
    # waiting for its turn or between retries.
    stop: threading.Event = field(default_factory=threading.Event)
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: "asyncio.Task[None] | None" = None
    best: Metrics | None = None
    # Its lease was taken over by another instance (or it was deleted there): stopped, and
    # nothing more written.
    lost: bool = False

    def snapshot(self) -> Any:
        """The operation as a client sees it now."""
        operation = operations_pb2.Operation()
        operation.CopyFrom(self.operation)
        operation.metadata.Pack(self.progress)
        return operation

    def touch(self) -> None:
        """Wake the watchers: each waits on the event of the moment, so replace it."""
        self.changed.set()
        self.changed = asyncio.Event()

    def request_stop(self, *, cancel: bool) -> None:
        self.cancelled = self.cancelled or cancel
        self.stop.set()
        self.stop_requested.set()


def process_owner() -> str:
    """An owner id of this process's own: its host and pid, for people reading the leases, and
    a random part, as pids repeat (every container's first process is 1)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Operations:
    """The sweep and walk-forward operations of one service: start, follow, cancel, resume.

    ``owner``: the id its leases are held under (`process_owner` unless given); instances
    sharing a database need different ones. ``lease_s``: how long a lease lasts unrenewed, the
    longest a dead instance's operations wait before another instance takes them over."""

    def __init__(
        self,
        store: OperationStore,
        results: ResultSink,
        bars: runs.BarSource,
        limits: runs.Limits,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        executor: SweepExecutor | None = None,
        owner: str | None = None,
        lease_s: float = 30.0,
    ) -> None:
        self._store = store
        self._results = results
        self._bars = bars
        self._limits = limits
        # Where the chunks run: threads of this process unless the composition root says.
        self._executor = executor or LocalExecutor(limits.sweep_workers)
        self._now_ms = now_ms
        self._running: dict[str, _Running] = {}
        self._turn = asyncio.Semaphore(1)
        self.owner = owner or process_owner()
        self._lease_ms = round(lease_s * 1000)
        self._keeper: asyncio.Task[None] | None = None

    async def start(self, request: backtest_service_pb2.StartSweepRequest) -> Any:
        """Check the sweep, store its operation and start it; the operation, at once."""
        checked = runs.check_sweep(request.sweep, self._limits)
        # The grid against the strategy's schema now, so a value out of range is refused here
        # and the total is known from the first answer.
        grid = await runs.compute(lambda: expand_grid(checked.strategy, checked.grid))
        now = self._now_ms()
        progress = backtest_service_pb2.SweepProgress(
            sweep_id=new_id(now),
            strategy=checked.strategy,
            rank_by=checked.rank_name,
            create_time=convert.timestamp(now),
            total_combinations=len(grid.combos),
        )
        return await self._add(progress.sweep_id, progress, request, now)

    async def start_walk_forward(
        self, request: backtest_service_pb2.StartWalkForwardRequest
    ) -> Any:
        """Check the walk-forward, store its operation and start it; the operation, at once."""
        checked = walk_forwards.check_walk_forward(request, self._limits)
        sweep = checked.sweep
        grid = await runs.compute(lambda: expand_grid(sweep.strategy, sweep.grid))
        walk_forwards.check_work(checked, len(grid.combos), self._limits)
        now = self._now_ms()
        progress = backtest_service_pb2.WalkForwardProgress(
            walk_forward_id=new_id(now),
            strategy=checked.sweep.strategy,
            total_folds=checked.folds,
            create_time=convert.timestamp(now),
        )
        return await self._add(progress.walk_forward_id, progress, request, now)

    async def _add(self, work_id: str, progress: Any, request: Message, now_ms: int) -> Any:
        operation = operations_pb2.Operation(name=PREFIX + work_id)
        operation.metadata.Pack(progress)
        kept = any_pb2.Any()
        kept.Pack(request)
        await self._store.add(
            operation, now_ms, kept.SerializeToString(), self.owner, self._lease_ms
        )
        self._launch(_Running(operation, progress, 0.0), request)
        logger.info("operation started", extra={"operation": operation.name})
        return operation

    async def resume(self) -> int:
        """Start again every unfinished operation no live instance runs (a stop interrupted
        it, or its instance died), and from then on keep the leases (see `_lease_round`);
        how many were resumed."""
        # What this owner held before the start is no running instance's: a restart with the
        # same owner takes its operations back at once rather than when their leases expire.
        await self._store.release(self.owner)
        resumed = await self._lease_round()
        self._keep_leases()
        return resumed

    def _resume(self, kept: Unfinished) -> None:
        request: Message = backtest_service_pb2.StartSweepRequest()
        progress: Any = backtest_service_pb2.SweepProgress()
        if not kept.operation.metadata.Is(progress.DESCRIPTOR):
            request = backtest_service_pb2.StartWalkForwardRequest()
            progress = backtest_service_pb2.WalkForwardProgress()
        any_pb2.Any.FromString(kept.request).Unpack(request)
        kept.operation.metadata.Unpack(progress)
        elapsed = progress.elapsed.ToTimedelta().total_seconds()
        self._launch(_Running(kept.operation, progress, elapsed), request)
        logger.info("operation resumed", extra={"operation": kept.operation.name})

    def _launch(self, entry: _Running, request: Message) -> None:
        self._running[entry.operation.name] = entry
        entry.task = asyncio.create_task(self._run(entry, request))
        self._keep_leases()

    def _keep_leases(self) -> None:
        """Start the lease round every third of a lease, unless it runs: from the first
        operation this instance runs, or from `resume`."""
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep_leases_every(self._lease_ms / 3000))

    async def _keep_leases_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._lease_round()
            except StoreError as exc:  # tried again next round, before the leases expire
                logger.error("operation leases not kept: %s", exc)

    async def _lease_round(self) -> int:
        """Take over the operations whose lease expired and run them; renew the leases of
        those running here, stopping any this instance no longer holds; cancel those whose
        cancel was asked of another instance. How many were taken over."""
        now = self._now_ms()
        claimed = await self._store.claim_unfinished(self.owner, now, self._lease_ms)
        # One of this instance's own, renewed late, is claimed again: it runs already.
        adopted = [kept for kept in claimed if kept.operation.name not in self._running]
        for kept in adopted:
            self._resume(kept)
        # Not those that ended: their end took their lease with it.
        running = {name for name, entry in self._running.items() if not entry.operation.done}
        if not running:
            return len(adopted)
        held = await self._store.renew(self.owner, running, now, self._lease_ms)
        for name in running - held:  # taken over (this instance stalled), or deleted
            entry = self._running.get(name)
            if entry is not None and not entry.operation.done:
                entry.lost = True
                entry.request_stop(cancel=False)
        for name in await self._store.cancel_requested(held):
            entry = self._running.get(name)
            if entry is not None:
                entry.request_stop(cancel=True)
        return len(adopted)

    async def get(self, name: str) -> Any:
        """The operation now; `NotFoundError` for a name never given or deleted."""
        entry = self._running.get(name)
        return entry.snapshot() if entry is not None else await self._store.get(name)

    async def page(self, page_size: int, page_token: str) -> tuple[list[Any], str]:
        """Operations newest first, running ones as they are now."""
        found, token = await self._store.page(page_size, page_token)
        listed = []
        for stored in found:
            entry = self._running.get(stored.name)
            operation = entry.snapshot() if entry is not None else stored
            # A sweep's response can be megabytes: a page of them would pass gRPC's message
            # limit. GetOperation gives it.
            operation.ClearField("response")
            listed.append(operation)
        return listed, token

    async def cancel(self, name: str) -> None:
        """Ask a running operation to stop; it ends CANCELLED (one another instance runs,
        within a third of a lease). A finished one is left as is."""
        entry = self._running.get(name)
        if entry is not None:
            entry.request_stop(cancel=True)
        elif not await self._store.request_cancel(name):
            await self._store.get(name)  # NotFoundError for an unknown name

    async def delete(self, name: str) -> None:
        """Forget an operation (cancelling it first if it runs)."""
        entry = self._running.get(name)
        if entry is not None and entry.task is not None:
            await self.cancel(name)
            await asyncio.shield(entry.task)
        await self._store.delete(name)
        # One answered from memory (its end was not kept) is forgotten there too.
        self._running.pop(name, None)

    async def wait(self, name: str, timeout_s: float | None) -> Any:
        """The operation once done, or as it is when ``timeout_s`` passes."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            entry = self._running.get(name)
            if entry is not None and entry.task is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(entry.task), left)
                left = None if deadline is None else max(0.0, deadline - loop.time())
            operation = await self.get(name)
            if operation.done or left == 0:
                return operation
            # Another instance's (or it became one's): read again until done.
            await asyncio.sleep(_POLL_S if left is None else min(_POLL_S, left))

    async def watch(self, name: str) -> AsyncIterator[Any]:
        """The operation now, then after each change (at most every 0.1 s; every 0.5 s when
        another instance runs it) until done."""
        last = None
        while True:
            entry = self._running.get(name)
            if entry is None:
                stored = await self._store.get(name)
                if stored != last:
                    yield stored
                    last = stored
                if stored.done:
                    return
                await asyncio.sleep(_POLL_S)
                continue
            changed = entry.changed
            last = entry.snapshot()
            yield last
            if last.done:  # ended while its result was being stored
                return
            await changed.wait()
            await asyncio.sleep(_WATCH_INTERVAL_S)

    async def close(self) -> None:
        """Stop every running operation, leaving it unfinished and its lease let go of, so that
        another instance or the next start resumes it at once; then close the executor (a
        cluster connection)."""
        if self._keeper is not None:  # first: it would take over operations as they stop
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        tasks = [entry.task for entry in self._running.values() if entry.task is not None]
        for entry in self._running.values():
            entry.request_stop(cancel=False)
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self._store.release(self.owner)
        except StoreError as exc:  # they are taken over when the leases expire instead
            logger.error("operation leases not let go of: %s", exc)
        await asyncio.to_thread(self._executor.close)

    async def _run(self, entry: _Running, request: Message) -> None:
        name = entry.operation.name
        try:
            if not await self._take_turn(entry):
                await self._end_stopped(entry)
                return
            try:
                if isinstance(request, backtest_service_pb2.StartSweepRequest):
                    await self._sweep(entry, request)
                elif isinstance(request, backtest_service_pb2.StartWalkForwardRequest):
                    await self._walk_forward(entry, request)
            finally:
                self._turn.release()
        except _StoppedError:
            await self._end_stopped(entry)
        except LeaseLostError:
            await self._let_go(entry)
        except RequestError as exc:
            await self._finish(entry, error=_status(exc.code, exc.message))
        except StoreError as exc:
            logger.error("operation failed on the store: %s", exc, extra={"operation": name})
            await self._finish(entry, error=_status(grpc.StatusCode.INTERNAL, str(exc)))
        except Exception:
            logger.exception("operation failed", extra={"operation": name})
            await self._finish(entry, error=_status(grpc.StatusCode.INTERNAL, "internal error"))

    async def _take_turn(self, entry: _Running) -> bool:
        """Wait for this operation's turn to compute; False if it is stopped first (a cancel
        of a waiting operation ends it at once)."""
        turn = asyncio.ensure_future(self._turn.acquire())
        stopped = asyncio.ensure_future(entry.stop_requested.wait())
        await asyncio.wait({turn, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not turn.done():
            turn.cancel()
            return False
        if entry.stop.is_set():
            self._turn.release()
            return False
        return True

    async def _bars_for(self, entry: _Running, query: DataQuery) -> Bars:
        """The bars of ``query``; while the price service is unavailable, tried again with
        backoff (an operation outlives an outage), until stopped."""
        delay = _RETRY_FIRST_S
        while True:
            try:
                bars = await runs.fetch_bars(self._bars, query)
            except RequestError as exc:
                if exc.code != grpc.StatusCode.UNAVAILABLE:
                    raise
                logger.warning(
                    "operation waits for its bars: %s; again in %.0f s", exc.message, delay,
                    extra={"operation": entry.operation.name},
                )  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(entry.stop_requested.wait(), delay)
                delay = min(delay * 2, _RETRY_MAX_S)
            else:
                if not entry.stop.is_set():
                    return bars
            if entry.stop.is_set():
                raise _StoppedError

    async def _sweep(
        self, entry: _Running, request: backtest_service_pb2.StartSweepRequest
    ) -> None:
        checked = runs.check_sweep(request.sweep, self._limits)
        bars = await self._bars_for(entry, checked.query)
        plan: SweepPlan = await runs.compute(
            lambda: plan_sweep(
                bars, checked.strategy, checked.grid, checked.config, checked.rank_attribute
            )
        )
        chunks = split(plan.combos, _CHUNKS)
        # Where each chunk starts in the grid: the ranking breaks ties by grid order.
        sizes = [len(chunk) for chunk in chunks.values()]
        firsts = dict(zip(chunks, itertools.accumulate(sizes[:-1], initial=0), strict=True))
        key = await asyncio.to_thread(_plan_key, plan)
        # Ranked as chunks finish and then let go, so memory holds the best `top_n`, not
        # every result of a grid of a million.
        ranking = plan.ranking(checked.top_n)
        # Chunks of another plan (the range's bars changed, a strategy's check did) are stale.
        done = set()
        for index, chunk in (await self._store.chunks(entry.operation.name)).items():
            if chunk.plan == key and index in chunks and len(chunk.metrics) == len(chunks[index]):
                done.add(index)
                ranking.add(firsts[index], chunks[index], chunk.metrics)
        entry.progress.total_combinations = len(plan.combos)
        entry.progress.done_combinations = sum(len(chunks[index]) for index in done)
        rank = rank_key(checked.rank_attribute)
        for result in ranking.best()[:1]:
            self._count_best(entry, result.params, result.metrics, rank)
        entry.touch()
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        async def keep_and_count(index: int, metrics: list[Metrics]) -> None:
            # A chunk counted done is a chunk kept: on disk first.
            await self._keep(entry, index, key, metrics)
            ranking.add(firsts[index], chunks[index], metrics)
            self._count(entry, chunks[index], metrics, rank, started)

        def on_chunk(index: int, metrics: list[Metrics]) -> None:
            asyncio.run_coroutine_threadsafe(keep_and_count(index, metrics), loop).result()

        pending = {i: chunk for i, chunk in chunks.items() if i not in done}
        await runs.compute(
            lambda: self._executor.run_chunks(plan.job, pending, entry.stop, on_chunk)
        )
        if entry.stop.is_set():
            await self._end_stopped(entry)
            return
        report = plan.report(ranking)
        sweep = runs.sweep_message(
            checked, report, entry.progress.sweep_id, entry.progress.create_time.ToMilliseconds()
        )

        async def kept_chunks() -> AsyncIterator[tuple[Sequence[Params], list[Metrics]]]:
            # Read back one at a time, in grid order: the whole table is never in memory.
            for index, chunk in chunks.items():
                yield chunk, (await self._store.chunk(entry.operation.name, index)).metrics

        # The whole table first: a stored sweep always has it (a restart in between stores
        # both again, its chunks are kept until the operation ends).
        await runs.keep_rows(self._results, sweep.id, kept_chunks())
        await self._results.add_sweep(sweep)
        logger.info(
            "sweep operation done",
            extra={"operation": entry.operation.name, "results": len(sweep.results)},
        )
        await self._finish(entry, response=sweep)

    async def _walk_forward(
        self, entry: _Running, request: backtest_service_pb2.StartWalkForwardRequest
    ) -> None:
        checked = walk_forwards.check_walk_forward(request, self._limits)
        sweep = checked.sweep
        bars = await self._bars_for(entry, sweep.query)
        # Its chunks are its sweeps, by their order (the whole period's, then each fold's):
        # the metrics are what a rerun of the same plan computes, so a restart reuses them.
        kept = await self._store.chunks(entry.operation.name)
        order = itertools.count()
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        def run_plan(plan: SweepPlan) -> list[Metrics]:
            index, key = next(order), _plan_key(plan)
            stored = kept.get(index)
            if stored is not None and stored.plan == key:
                return stored.metrics
            # In as many chunks as the executor computes at once, stopped as a sweep's.
            parts: dict[int, list[Metrics]] = {}
            chunks = split(plan.combos, self._executor.parallelism())
            self._executor.run_chunks(plan.job, chunks, entry.stop, parts.__setitem__)
            if entry.stop.is_set():
                raise _StoppedError
            metrics = [m for i in sorted(parts) for m in parts[i]]
            keep = self._keep(entry, index, key, metrics)
            asyncio.run_coroutine_threadsafe(keep, loop).result()
            return metrics

        def on_progress(done: int, total: int) -> None:
            loop.call_soon_threadsafe(self._count_folds, entry, done, total, started)

        report = await runs.compute(
            lambda: walk_forward(
                bars, sweep.strategy, sweep.grid,
                FoldLayout.from_ratio(len(bars), checked.folds, checked.in_sample_ratio,
                                      checked.mode),
                sweep.config, sweep.rank_attribute, warmup_bars=checked.warmup_bars,
                run_plan=run_plan, on_progress=on_progress,
            )
        )  # fmt: skip
        message = walk_forwards.walk_forward_message(
            checked, report, entry.progress.walk_forward_id,
            entry.progress.create_time.ToMilliseconds(), self._limits.max_equity_points,
        )  # fmt: skip
        await self._results.add_walk_forward(message)
        await self._finish(entry, response=message)

    def _count_folds(self, entry: _Running, done: int, total: int, started: float) -> None:
        entry.progress.done_folds, entry.progress.total_folds = done, total
        entry.progress.elapsed.CopyFrom(_duration(time.monotonic() - started))
        entry.touch()

    def _count_best(
        self, entry: _Running, params: Params, result: Metrics, key: Callable[[Metrics], Any]
    ) -> None:
        if entry.best is None or key(result) < key(entry.best):
            entry.best = result
            entry.progress.best.CopyFrom(convert.sweep_result_proto(params, result))

    def _count(
        self,
        entry: _Running,
        chunk: Sequence[Params],
        metrics: list[Metrics],
        key: Callable[[Metrics], Any],
        started: float,
    ) -> None:
        entry.progress.done_combinations += len(metrics)
        for params, result in zip(chunk, metrics, strict=True):
            self._count_best(entry, params, result, key)
        entry.progress.elapsed.CopyFrom(
            _duration(entry.elapsed_before_s + time.monotonic() - started)
        )
        entry.touch()

    async def _keep(self, entry: _Running, index: int, plan: str, metrics: list[Metrics]) -> None:
        await self._store.add_chunk(entry.snapshot(), index, plan, metrics, self.owner)

    async def _end_stopped(self, entry: _Running) -> None:
        if entry.lost:
            await self._let_go(entry)
        elif entry.cancelled:
            await self._finish(
                entry, error=_status(grpc.StatusCode.CANCELLED, "cancelled by the client")
            )
        else:  # the service is stopping: keep it unfinished, with its progress, to resume
            try:
                await self._store.save(entry.snapshot(), self.owner)
            except LeaseLostError:
                await self._let_go(entry)
                return
            except StoreError as exc:  # its chunks are kept: it resumes from them anyway
                logger.error(
                    "progress not kept: %s", exc, extra={"operation": entry.operation.name}
                )
            self._running.pop(entry.operation.name, None)
            entry.touch()

    async def _let_go(self, entry: _Running) -> None:
        """Forget an operation this instance no longer holds, writing nothing of it; Get, Wait
        and Watch read it from the store, where its new owner keeps it."""
        name = entry.operation.name
        # Its lease was taken over (this instance stalled past it), or it was deleted.
        logger.warning(
            "operation stopped here: it is no longer this instance's", extra={"operation": name}
        )
        self._running.pop(name, None)
        entry.touch()
        if entry.cancelled:  # asked of this instance: passed on to the new owner
            with contextlib.suppress(StoreError):
                await self._store.request_cancel(name)

    async def _finish(
        self, entry: _Running, *, response: Message | None = None, error: Any = None
    ) -> None:
        entry.operation.done = True
        if response is not None:
            entry.operation.response.Pack(response)
        else:
            entry.operation.error.CopyFrom(error)
        try:
            await self._store.save(entry.snapshot(), self.owner)
        except LeaseLostError:
            await self._let_go(entry)
            return
        except StoreError as exc:
            # Answered from memory until a restart, which runs it again (it is not done there).
            logger.error("end not kept: %s", exc, extra={"operation": entry.operation.name})
        else:
            self._running.pop(entry.operation.name, None)
        entry.touch()


class _StoppedError(Exception):
    """Raised in a worker thread to end a walk-forward the stop flag asks to end."""


def _plan_key(plan: SweepPlan) -> str:
    """A fingerprint of what a plan computes: its bars, config and combinations."""
    bars = plan.job.bars
    digest = hashlib.sha256()
    for column in (bars.open_time_ms, bars.open, bars.high, bars.low, bars.close):
        digest.update(column.tobytes())
    digest.update(repr((plan.job.strategy, plan.job.config)).encode())
    for params in plan.combos:  # one at a time: a million combinations make no big string
        digest.update(repr(sorted(params.items())).encode())
    return digest.hexdigest()


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration

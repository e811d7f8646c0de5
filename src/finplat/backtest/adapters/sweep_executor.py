"""Where a sweep's chunks of combinations run: threads of this process, a Ray cluster
(`ray_executor`), or in line.

A chunk is the unit of work, of progress and of what a stop waits for: `SweepJob.run`
computes a whole chunk at once, so an executor hands each chunk over when it is finished and
never part of one. `run_sweep` is the one-call sweep of scripts and the benchmarks.
"""

import math
import multiprocessing
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Literal, Protocol

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig
from finplat.backtest.domain.errors import InvalidConfigError
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.strategies import Indicators, Params
from finplat.backtest.domain.sweep import SweepJob, SweepPlan, SweepReport, plan_sweep

Backend = Literal["process", "thread", "serial"]
OnChunk = Callable[[int, list[Metrics]], None]

# Set only inside process-pool workers (each process has its own copy).
_PROCESS_JOB: list[SweepJob] = []


class SweepExecutor(Protocol):
    """Runs chunks of a sweep's combinations; `LocalExecutor` and `RayExecutor` are the two."""

    def parallelism(self) -> int:
        """Chunks it computes at once: what a plan is cut into when it needs no finer chunks."""
        ...

    def run_chunks(
        self,
        job: SweepJob,
        chunks: Mapping[int, Sequence[Params]],
        stop: threading.Event,
        on_chunk: OnChunk,
    ) -> None:
        """Compute each of ``chunks`` (by index) with ``job``, handing its metrics to
        ``on_chunk(index, metrics)`` as it finishes (from any thread).

        Returns once every chunk was handed over, or soon after ``stop`` is set: the chunks not
        handed over by then are dropped, and none is handed over afterwards. The first error of
        any chunk stops the others and is raised.
        """
        ...

    def close(self) -> None:
        """Let go of what it holds (a cluster connection); the service calls it when it stops."""
        ...


class LocalExecutor:
    """Chunks on ``workers`` threads of this process, sharing the job's indicator memo.

    numba kernels are ``nogil`` and numpy releases the GIL, so the threads use the cores. A
    stop is seen between chunks: the chunks being computed finish first (and are dropped).
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise InvalidConfigError(f"workers must be >= 1, got {workers}")
        self._workers = workers

    def parallelism(self) -> int:
        return self._workers

    def run_chunks(
        self,
        job: SweepJob,
        chunks: Mapping[int, Sequence[Params]],
        stop: threading.Event,
        on_chunk: OnChunk,
    ) -> None:
        failed = threading.Event()

        def run(index: int) -> None:
            if stop.is_set() or failed.is_set():
                return
            try:
                metrics = job.run(chunks[index])
                if not stop.is_set():
                    on_chunk(index, metrics)
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(self._workers, thread_name_prefix="sweep") as threads:
            futures = [threads.submit(run, index) for index in sorted(chunks)]
            for future in futures:
                future.result()

    def close(self) -> None:
        pass


def _init_process(bars: Bars, strategy: str, config: EngineConfig) -> None:
    _PROCESS_JOB[:] = [SweepJob(bars, strategy, config, Indicators(bars))]


def _run_in_process(chunk: Sequence[Params]) -> list[Metrics]:
    return _PROCESS_JOB[0].run(chunk)


def split(items: Sequence[Params], parts: int) -> dict[int, Sequence[Params]]:
    """``items`` in at most ``parts`` contiguous chunks, by index.

    Contiguous chunks keep combinations sharing a first parameter (and its indicator) together.
    """
    size = max(1, math.ceil(len(items) / parts))
    return dict(enumerate(items[i : i + size] for i in range(0, len(items), size)))


def run_plan_in_threads(plan: SweepPlan, workers: int) -> list[Metrics]:
    """The metrics of every combination of ``plan``, in order, on ``workers`` threads sharing
    the plan's indicator memo (see ``run_sweep``'s ``thread`` backend)."""
    with ThreadPoolExecutor(workers) as threads:
        parts = threads.map(plan.job.run, split(plan.combos, workers).values())
        return [m for part in parts for m in part]


def run_sweep(
    bars: Bars,
    strategy: str,
    grid: Mapping[str, Sequence[object]],
    config: EngineConfig | None = None,
    rank_by: str = "sharpe",
    *,
    workers: int = 2,
    backend: Backend = "thread",
) -> SweepReport:
    """Backtest every valid combo and rank by ``rank_by``.

    ``thread`` (default) runs ``workers`` threads sharing one indicator memo (each SMA length
    is computed once); numba kernels are ``nogil`` and numpy releases the GIL, so threads use
    both cores. Measured on 1M bars x 100 combos it is as fast as or faster than
    ``process``, which forks workers with a memo each (and forking a threaded host process,
    e.g. a gRPC server, is unsafe). ``serial`` runs in the calling thread.
    """
    if workers < 1:
        raise InvalidConfigError(f"workers must be >= 1, got {workers}")
    plan = plan_sweep(bars, strategy, grid, config, rank_by)
    job, combos = plan.job, plan.combos
    if backend == "serial" or workers == 1 or len(combos) <= 1:
        metrics = job.run(combos)
    elif backend == "thread":
        metrics = run_plan_in_threads(plan, workers)
    else:
        # fork: workers inherit the bars and compiled kernels instead of re-importing them.
        with ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_process,
            initargs=(job.bars, job.strategy, job.config),
        ) as procs:
            parts = procs.map(_run_in_process, split(combos, workers).values())
            metrics = [m for part in parts for m in part]
    return plan.report_all(metrics)

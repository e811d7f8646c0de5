"""Runs a sweep's chunks of combinations on a pool of threads or processes, or in line."""

import math
import multiprocessing
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Literal

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig
from finplat.backtest.domain.errors import InvalidConfigError
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.strategies import Indicators, Params
from finplat.backtest.domain.sweep import SweepJob, SweepPlan, SweepReport, plan_sweep

Backend = Literal["process", "thread", "serial"]

# Set only inside process-pool workers (each process has its own copy).
_PROCESS_JOB: list[SweepJob] = []


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
    return plan.report(metrics)


def run_chunks(
    job: SweepJob,
    chunks: Mapping[int, Sequence[Params]],
    workers: int,
    stop: threading.Event,
    on_combination: Callable[[Params, Metrics], None],
    on_chunk: Callable[[int, list[Metrics]], None],
) -> None:
    """Run ``chunks`` (by index) on ``workers`` threads, one combination at a time.

    ``stop`` is looked at before every combination, so setting it ends the work within one
    backtest; a chunk is handed to ``on_chunk`` only once all its combinations finished (and
    then in full). The first error of any chunk stops the others and is raised.
    """
    failed = threading.Event()

    def run(index: int) -> None:
        metrics: list[Metrics] = []
        try:
            for params in chunks[index]:
                if stop.is_set() or failed.is_set():
                    return
                (result,) = job.run([params])
                metrics.append(result)
                on_combination(params, result)
            on_chunk(index, metrics)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(workers, thread_name_prefix="sweep") as threads:
        futures = [threads.submit(run, index) for index in sorted(chunks)]
        for future in futures:
            future.result()

"""The local executor: chunks handed over whole as they finish, a stop seen between chunks, the
first error raised. (The Ray executor's twin is tests/integration/backtest/test_ray_executor.py.)"""

import threading
from collections.abc import Sequence
from typing import cast

import pytest

from finplat.backtest.adapters.sweep_executor import LocalExecutor, split
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.errors import InvalidConfigError, StrategyFailedError
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.strategies import Params
from finplat.backtest.domain.sweep import SweepJob, plan_sweep


def test_every_chunk_is_handed_over_whole_with_the_metrics_of_its_combinations(
    q4_bars: Bars,
) -> None:
    plan = plan_sweep(q4_bars, "sma_crossover", {"fast": [5, 10, 15], "slow": [20, 40, 60, 80]})
    chunks = split(plan.combos, 5)
    handed: dict[int, list[Metrics]] = {}

    LocalExecutor(2).run_chunks(plan.job, chunks, threading.Event(), handed.__setitem__)

    assert sorted(handed) == sorted(chunks) == list(range(4))  # 12 combinations in 3s
    assert [m for i in sorted(handed) for m in handed[i]] == plan.job.run(plan.combos)


class _CountingJob:
    """Counts the chunks it runs; fails on chunk ``fail_on`` (its first combination's value)."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.ran: list[int] = []
        self._fail_on = fail_on
        self._lock = threading.Lock()

    def run(self, chunk: Sequence[Params]) -> list[Metrics]:
        index = int(chunk[0]["i"])
        with self._lock:
            self.ran.append(index)
        if index == self._fail_on:
            raise StrategyFailedError("counting", "told to fail")
        return []


def _chunks(count: int) -> dict[int, Sequence[Params]]:
    return {i: [Params("counting", {"i": i})] for i in range(count)}


def test_a_stop_ends_the_work_between_chunks_and_nothing_is_handed_over_after_it() -> None:
    job, stop = _CountingJob(), threading.Event()
    handed: list[int] = []

    def on_chunk(index: int, metrics: list[Metrics]) -> None:
        handed.append(index)
        stop.set()  # after the first chunk

    LocalExecutor(1).run_chunks(cast(SweepJob, job), _chunks(50), stop, on_chunk)

    assert handed == [0]
    assert job.ran == [0]


def test_the_first_error_stops_the_other_chunks_and_is_raised() -> None:
    job = _CountingJob(fail_on=3)
    handed: list[int] = []

    with pytest.raises(StrategyFailedError, match="told to fail"):
        LocalExecutor(1).run_chunks(
            cast(SweepJob, job), _chunks(50), threading.Event(), lambda i, m: handed.append(i)
        )

    assert job.ran == [0, 1, 2, 3]
    assert handed == [0, 1, 2]


def test_an_executor_needs_a_worker() -> None:
    with pytest.raises(InvalidConfigError):
        LocalExecutor(0)

"""Parameter sweeps: a validated grid, run on several cores, ranked by one metric."""

from __future__ import annotations

import itertools
import math
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Literal

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig, run_backtest
from finplat.backtest.domain.errors import (
    InvalidBarsError,
    InvalidConfigError,
    InvalidParameterError,
)
from finplat.backtest.domain.metrics import Metrics, bars_per_year
from finplat.backtest.domain.strategies import Indicators, StrategyParams, get_strategy
from finplat.backtest.domain.strategies.base import Number

Backend = Literal["process", "thread", "serial"]
METRIC_NAMES = tuple(f.name for f in fields(Metrics))
# Metrics where smaller is better; everything else ranks descending.
_LOWER_IS_BETTER = frozenset({"max_drawdown", "max_drawdown_duration_bars", "annual_volatility"})


@dataclass(frozen=True, slots=True)
class SweepResult:
    params: StrategyParams
    metrics: Metrics


@dataclass(frozen=True, slots=True)
class SkippedCombo:
    params: Mapping[str, Number]
    reason: str


@dataclass(frozen=True, slots=True)
class SweepReport:
    """Results best first (NaN metrics last) and the combos skipped as invalid."""

    strategy: str
    rank_by: str
    results: tuple[SweepResult, ...]
    skipped: tuple[SkippedCombo, ...]


def expand_grid(
    strategy: str, grid: Mapping[str, Sequence[object]]
) -> tuple[list[StrategyParams], list[SkippedCombo]]:
    """All combos of ``grid`` (missing params take defaults).

    A value outside its own schema range is an error in the grid and raises; a combo that is
    only invalid as a whole (e.g. fast >= slow) is skipped with the reason.
    """
    spec = get_strategy(strategy)
    schema = {p.name: p for p in spec.schema}
    axes: dict[str, list[Number]] = {}
    for name, values in grid.items():
        if name not in schema:
            raise InvalidParameterError(strategy, name, f"unknown; expected {sorted(schema)}")
        if len(values) == 0:
            raise InvalidParameterError(strategy, name, "grid axis is empty")
        axes[name] = list(dict.fromkeys(schema[name].coerce(strategy, v) for v in values))
    valid: list[StrategyParams] = []
    skipped: list[SkippedCombo] = []
    for combo in itertools.product(*axes.values()):
        raw = dict(zip(axes, combo, strict=True))
        try:
            valid.append(spec.parse(raw))
        except InvalidParameterError as exc:
            skipped.append(SkippedCombo(raw, exc.reason))
    return valid, skipped


@dataclass(frozen=True, slots=True)
class _Job:
    """Everything a worker needs; the indicator memo is shared by the combos it runs."""

    bars: Bars
    strategy: str
    config: EngineConfig
    indicators: Indicators

    def run(self, chunk: Sequence[StrategyParams]) -> list[Metrics]:
        spec = get_strategy(self.strategy)
        return [
            run_backtest(self.bars, spec.signal(self.bars, p, self.indicators), self.config).metrics
            for p in chunk
        ]


# Set only inside process-pool workers (each process has its own copy).
_PROCESS_JOB: list[_Job] = []


def _init_process(bars: Bars, strategy: str, config: EngineConfig) -> None:
    _PROCESS_JOB[:] = [_Job(bars, strategy, config, Indicators(bars))]


def _run_in_process(chunk: Sequence[StrategyParams]) -> list[Metrics]:
    return _PROCESS_JOB[0].run(chunk)


def _chunks(items: Sequence[StrategyParams], n: int) -> list[Sequence[StrategyParams]]:
    # Contiguous chunks keep combos sharing a first parameter (and its indicator) together.
    size = math.ceil(len(items) / n)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _rank_key(metric: str, descending: bool) -> Callable[[SweepResult], tuple[bool, float]]:
    def key(result: SweepResult) -> tuple[bool, float]:
        value = float(getattr(result.metrics, metric))
        return (math.isnan(value), -value if descending else value)

    return key


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
    if rank_by not in METRIC_NAMES:
        raise InvalidConfigError(f"rank_by must be one of {METRIC_NAMES}, got {rank_by!r}")
    if workers < 1:
        raise InvalidConfigError(f"workers must be >= 1, got {workers}")
    if len(bars) < 2:
        raise InvalidBarsError("need at least 2 bars")
    cfg = config or EngineConfig()
    if cfg.bars_per_year is None:
        # Derive once rather than per combo (a median over all bar spacings).
        cfg = replace(cfg, bars_per_year=bars_per_year(bars.open_time_ms))
    combos, skipped = expand_grid(strategy, grid)
    job = _Job(bars, strategy, cfg, Indicators(bars))
    if backend == "serial" or workers == 1 or len(combos) <= 1:
        metrics = job.run(combos)
    elif backend == "thread":
        with ThreadPoolExecutor(workers) as threads:
            metrics = [m for part in threads.map(job.run, _chunks(combos, workers)) for m in part]
    else:
        # fork: workers inherit the bars and compiled kernels instead of re-importing them.
        with ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_process,
            initargs=(bars, strategy, cfg),
        ) as procs:
            parts = procs.map(_run_in_process, _chunks(combos, workers))
            metrics = [m for part in parts for m in part]
    results = [SweepResult(p, m) for p, m in zip(combos, metrics, strict=True)]
    results.sort(key=_rank_key(rank_by, rank_by not in _LOWER_IS_BETTER))
    return SweepReport(strategy, rank_by, tuple(results), tuple(skipped))

"""Parameter sweeps: a validated grid, the work of a chunk of combinations, and the ranking.

Where the chunks run (threads, processes, a cluster) is an executor's business, in
`finplat.backtest.adapters.sweep_executor`; this module only says what each one computes.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig
from finplat.backtest.domain.errors import (
    InvalidBarsError,
    InvalidConfigError,
    InvalidParameterError,
)
from finplat.backtest.domain.metrics import Metrics, bars_per_year
from finplat.backtest.domain.strategies import Indicators, Params, StrategySpec, get_strategy
from finplat.backtest.domain.strategies.base import Number
from finplat.backtest.domain.sweep_kernel import score_chunk

METRIC_NAMES = tuple(f.name for f in fields(Metrics))
# Metrics where smaller is better; everything else ranks descending.
_LOWER_IS_BETTER = frozenset({"max_drawdown", "max_drawdown_duration_bars", "annual_volatility"})


@dataclass(frozen=True, slots=True)
class SweepResult:
    params: Params
    metrics: Metrics


@dataclass(frozen=True, slots=True)
class SkippedCombo:
    params: Mapping[str, Number]
    reason: str


@dataclass(frozen=True, slots=True)
class SweepReport:
    """Results best first (NaN metrics last), and the combos skipped as invalid: their count
    and the first ``SKIPPED_EXAMPLES`` of them with the reason."""

    strategy: str
    rank_by: str
    results: tuple[SweepResult, ...]
    skipped: tuple[SkippedCombo, ...]
    skipped_count: int


# Skipped combos kept with their reason: enough to say what is wrong, while a large grid
# (half of a fast x slow grid fails fast < slow) skips hundreds of thousands.
SKIPPED_EXAMPLES = 100


@dataclass(frozen=True, slots=True)
class ExpandedGrid:
    """The valid combinations of a grid, in grid order, and what was skipped (see
    ``SweepReport``)."""

    combos: list[Params]
    skipped: list[SkippedCombo]
    skipped_count: int


def expand_grid(strategy: str, grid: Mapping[str, Sequence[object]]) -> ExpandedGrid:
    """All combos of ``grid`` (missing params take defaults).

    A value outside its own schema range is an error in the grid and raises; a combo that is
    only invalid as a whole (e.g. fast >= slow) is skipped with the reason. Each value is
    checked once per axis, not per combo, so a million combinations expand in seconds.
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
    defaults = _defaults(spec)
    valid: list[Params] = []
    skipped: list[SkippedCombo] = []
    skipped_count = 0
    for combo in itertools.product(*axes.values()):
        raw = dict(zip(axes, combo, strict=True))
        params = Params(strategy, {**defaults, **raw})
        reason = spec.check(params) if spec.check is not None else None
        if reason is None:
            valid.append(params)
            continue
        skipped_count += 1
        if len(skipped) < SKIPPED_EXAMPLES:
            skipped.append(SkippedCombo(raw, reason))
    return ExpandedGrid(valid, skipped, skipped_count)


def _defaults(spec: StrategySpec) -> dict[str, Number]:
    """Each parameter's default, coerced (the defaults need not pass the check together)."""
    return {p.name: p.coerce(spec.name, p.default) for p in spec.schema}


@dataclass(frozen=True, slots=True)
class SweepJob:
    """Everything a worker needs; the indicator memo is shared by the combos it runs."""

    bars: Bars
    strategy: str
    config: EngineConfig
    indicators: Indicators

    def run(self, chunk: Sequence[Params]) -> list[Metrics]:
        """The metrics of each combination of `chunk`, in its order (see ``sweep_kernel``)."""
        return score_chunk(self.bars, self.strategy, chunk, self.config, self.indicators)


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """A checked sweep: the combinations to run, those skipped, and how to rank them."""

    job: SweepJob
    grid: ExpandedGrid
    rank_by: str

    @property
    def combos(self) -> list[Params]:
        return self.grid.combos

    def ranking(self, top_n: int = 0) -> Ranking:
        """An empty ranking of this plan's results, keeping the best ``top_n`` (0: all)."""
        return Ranking(self.rank_by, top_n)

    def report(self, ranking: Ranking) -> SweepReport:
        """The report of the results added to ``ranking``."""
        return SweepReport(
            self.job.strategy,
            self.rank_by,
            ranking.best(),
            tuple(self.grid.skipped),
            self.grid.skipped_count,
        )

    def report_all(self, metrics: Sequence[Metrics]) -> SweepReport:
        """The report of the metrics of every combination, given in `combos` order."""
        ranking = self.ranking()
        ranking.add(0, self.combos, metrics)
        return self.report(ranking)


class Ranking:
    """The best results so far, by one metric, of combinations added in any order.

    Keeps at most ``top_n`` (0: all) on a bounded heap, so a million combinations rank in
    the memory of the few kept. Ties keep the grid order (the combination's index), as a
    stable sort of all of them would, whatever order the chunks finish in.
    """

    def __init__(self, rank_by: str, top_n: int = 0) -> None:
        self._key = rank_key(rank_by)
        self._top_n = top_n
        # Max-heap by badness: its root is the worst kept, the one a better result replaces.
        self._heap: list[tuple[tuple[bool, float], int, SweepResult]] = []

    def add(self, first_index: int, combos: Sequence[Params], metrics: Sequence[Metrics]) -> None:
        """Results of combinations ``first_index``, ``first_index + 1``, ... of the grid."""
        for offset, (params, result) in enumerate(zip(combos, metrics, strict=True)):
            nan, value = self._key(result)
            # Negated, so that the heap's smallest entry is the worst kept result; NaNs tie
            # (NaN compares unequal to itself) and fall to the grid order.
            badness = (not nan, 0.0 if nan else -value)
            entry = (badness, -(first_index + offset), SweepResult(params, result))
            if not self._top_n or len(self._heap) < self._top_n:
                heapq.heappush(self._heap, entry)
            elif entry[:2] > self._heap[0][:2]:
                heapq.heapreplace(self._heap, entry)

    def best(self) -> tuple[SweepResult, ...]:
        """The kept results, best first."""
        ordered = sorted(self._heap, key=lambda entry: entry[:2], reverse=True)
        return tuple(result for _, _, result in ordered)


def rank_key(metric: str) -> Callable[[Metrics], tuple[bool, float]]:
    """Sort key putting the best metrics first by ``metric``, and NaN last."""
    descending = metric not in _LOWER_IS_BETTER

    def key(metrics: Metrics) -> tuple[bool, float]:
        value = float(getattr(metrics, metric))
        return (math.isnan(value), -value if descending else value)

    return key


def plan_sweep(
    bars: Bars,
    strategy: str,
    grid: Mapping[str, Sequence[object]],
    config: EngineConfig | None = None,
    rank_by: str = "sharpe",
) -> SweepPlan:
    """Check the sweep and expand its grid; InvalidConfigError or InvalidBarsError if unfit."""
    if rank_by not in METRIC_NAMES:
        raise InvalidConfigError(f"rank_by must be one of {METRIC_NAMES}, got {rank_by!r}")
    if len(bars) < 2:
        raise InvalidBarsError("need at least 2 bars")
    cfg = config or EngineConfig()
    if cfg.bars_per_year is None:
        # Derive once rather than per combo (a median over all bar spacings).
        cfg = replace(cfg, bars_per_year=bars_per_year(bars.open_time_ms))
    return SweepPlan(
        SweepJob(bars, strategy, cfg, Indicators(bars)), expand_grid(strategy, grid), rank_by
    )

"""Parameter sweeps: a validated grid, the work of a chunk of combinations, and the ranking.

Where the chunks run (threads, processes, a cluster) is an executor's business, in
`finplat.backtest.adapters.sweep_executor`; this module only says what each one computes.
"""

from __future__ import annotations

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
from finplat.backtest.domain.strategies import Indicators, Params, get_strategy
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
    """Results best first (NaN metrics last) and the combos skipped as invalid."""

    strategy: str
    rank_by: str
    results: tuple[SweepResult, ...]
    skipped: tuple[SkippedCombo, ...]


def expand_grid(
    strategy: str, grid: Mapping[str, Sequence[object]]
) -> tuple[list[Params], list[SkippedCombo]]:
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
    valid: list[Params] = []
    skipped: list[SkippedCombo] = []
    for combo in itertools.product(*axes.values()):
        raw = dict(zip(axes, combo, strict=True))
        try:
            valid.append(spec.parse(raw))
        except InvalidParameterError as exc:
            skipped.append(SkippedCombo(raw, exc.reason))
    return valid, skipped


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
    combos: list[Params]
    skipped: list[SkippedCombo]
    rank_by: str

    def report(self, metrics: Sequence[Metrics]) -> SweepReport:
        """The report of the metrics of every combination, given in `combos` order."""
        results = [SweepResult(p, m) for p, m in zip(self.combos, metrics, strict=True)]
        key = rank_key(self.rank_by)
        results.sort(key=lambda result: key(result.metrics))
        return SweepReport(self.job.strategy, self.rank_by, tuple(results), tuple(self.skipped))


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
    combos, skipped = expand_grid(strategy, grid)
    return SweepPlan(SweepJob(bars, strategy, cfg, Indicators(bars)), combos, skipped, rank_by)

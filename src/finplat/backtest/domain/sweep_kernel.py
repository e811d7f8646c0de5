"""The sweep kernel: the metrics of many combinations of one strategy on the same bars.

A combination's metrics are those of ``run_strategy`` exactly: the same resumable simulation
(``simulation.advance``) and the same running statistics (``metrics.add_equity``,
``add_trades``, ``metrics_from``), only without the per-bar outputs a single backtest
returns. Bars are taken in tiles of ``TILE_BARS``: the equity and trades of a tile go to small
buffers, reused, whose statistics are added before the next tile, so no combination allocates
a curve as long as the bars.

The SMA crossover shares more: its combinations read one array, the closes' exact running
sums (``FixedPointSums``), from which any mean, and the exact side of two means, is a few
integer operations. So no SMA series is stored at all, and each tile of bars is run for every
combination of a chunk while it is in cache, instead of streaming 1M-bar series per
combination. Other strategies compute their targets one combination at a time, their
indicator series shared through the ``Indicators`` memo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain._jit import njit
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import (
    Costs,
    EngineConfig,
    PositionMode,
    as_target,
    simulation_costs,
)
from finplat.backtest.domain.errors import InvalidBarsError
from finplat.backtest.domain.indicators.fixed_point import compare_means
from finplat.backtest.domain.metrics import (
    BLOCK,
    Metrics,
    add_equity,
    add_trades,
    bars_per_year,
    equity_accumulator,
    metrics_from,
    trade_accumulator,
)
from finplat.backtest.domain.simulation import (
    S_EXPOSED,
    TF_PNL,
    advance,
    finish,
    new_state,
    trade_buffers,
    trade_returns,
)
from finplat.backtest.domain.strategies import Indicators, Params, get_strategy
from finplat.backtest.domain.strategies.crossovers import SMA_SPEC

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]

# Bars per tile: open, close and the running sums of a tile (3 x 32 KiB) stay in the L2 cache
# while a chunk's combinations run over them. A multiple of BLOCK: each tile's equity is a
# piece of its curve, and the pieces must start at multiples of BLOCK.
TILE_BARS = 4 * BLOCK
_INT64_LIMIT = 2**63


Columns = tuple[FloatArray, FloatArray, FloatArray, FloatArray]
Scratch = tuple[FloatArray, Int8Array, IntArray, FloatArray]
"""A tile's equity and sides, and the trades it closes (at most two a bar), reused."""


def _scratch() -> Scratch:
    ti, tf = trade_buffers(2 * TILE_BARS + 1)
    return np.empty(TILE_BARS), np.empty(TILE_BARS, np.int8), ti, tf


@njit
def _run_tile(
    bars: Columns,
    start: int,
    target: Int8Array,
    floats: FloatArray,
    ints: IntArray,
    costs: Costs,
    scratch: Scratch,
    curve: FloatArray,
    closed: FloatArray,
) -> None:
    """Simulate one tile (bars ``start..start + len(target)``) and add its equity and closed
    trades to ``curve`` and ``closed``; the last tile liquidates, as a backtest does."""
    open_, high, low, close = bars
    fee_rate, slippage, fraction, stop_loss, take_profit = costs
    equity, side, ti, tf = scratch
    stop = start + target.shape[0]
    m = target.shape[0]
    k = advance(
        open_[start:stop], high[start:stop], low[start:stop], close[start:stop], target, start,
        floats, ints, fee_rate, slippage, fraction, stop_loss, take_profit,
        equity[:m], side[:m], ti, tf,
    )  # fmt: skip
    if stop == close.shape[0]:
        k = finish(
            stop - 1, close[stop - 1], floats, ints, slippage, fee_rate, equity[:m], ti, tf, k
        )
    add_equity(curve, equity[:m])
    add_trades(closed, tf[:k, TF_PNL], trade_returns(tf[:k]))


@njit
def _score_targets(
    bars: Columns,
    target: Int8Array,
    floats: FloatArray,
    ints: IntArray,
    costs: Costs,
    scratch: Scratch,
    curve: FloatArray,
    closed: FloatArray,
) -> None:
    """Run one combination's targets over every tile."""
    n = target.shape[0]
    for start in range(0, n, TILE_BARS):
        stop = min(n, start + TILE_BARS)
        _run_tile(bars, start, target[start:stop], floats, ints, costs, scratch, curve, closed)


@njit
def _mean_sides(
    cumulative: IntArray,
    fast: int,
    slow: int,
    small: bool,
    start: int,
    held: int,
    long_only: bool,
    out: Int8Array,
) -> int:
    """Targets of bars ``start..start + len(out)`` of a crossover of the ``fast``- and
    ``slow``-bar means: the exact side of the two means, a tie keeping the side held before
    (``hold_last``), 0 until both means exist. Returns the side held after the last bar.

    ``small``: every cross product ``sum x period`` fits in int64, so the side is one
    comparison of them (a loop the compiler vectorises); otherwise ``compare_means`` decides,
    as it does ``FixedPointSums.decide_ties``'s ties.
    """
    m = out.shape[0]
    # Bars before both means exist have no side; from ``first`` on, index the sums directly.
    first = min(max(max(fast, slow) - 1 - start, 0), m)
    out[:first] = 0
    now = cumulative[start + first + 1 : start + m + 1]
    ago_fast = cumulative[start + first + 1 - fast : start + m + 1 - fast]
    ago_slow = cumulative[start + first + 1 - slow : start + m + 1 - slow]
    sides = out[first:]
    ties = 0
    if small:
        for i in range(sides.shape[0]):
            diff = (now[i] - ago_fast[i]) * slow - (now[i] - ago_slow[i]) * fast
            sides[i] = (diff > 0) - (diff < 0)
            ties += diff == 0
    else:
        for i in range(sides.shape[0]):
            sides[i] = compare_means(now[i] - ago_fast[i], fast, now[i] - ago_slow[i], slow)
            ties += sides[i] == 0
    if first == 0 and ties == 0:
        # Every bar has a side, so none holds the one before: no chain from bar to bar.
        held = out[m - 1]
        if long_only:
            for i in range(m):
                out[i] = max(out[i], 0)
        return held
    for i in range(m):
        side = out[i]
        held = side if side != 0 else held
        out[i] = 0 if long_only and held < 0 else held
    return held


@njit
def _score_mean_crossovers(
    bars: Columns,
    cumulative: IntArray,
    fasts: IntArray,
    slows: IntArray,
    small: npt.NDArray[np.bool_],
    long_only: bool,
    costs: Costs,
    scratch: Scratch,
    floats: FloatArray,
    ints: IntArray,
    curves: FloatArray,
    closeds: FloatArray,
) -> None:
    """Run every combination (row) tile by tile: each tile of bars is read from cache by all
    of them before the next one is loaded."""
    n = bars[3].shape[0]
    combos = fasts.shape[0]
    held = np.zeros(combos, np.int64)
    target = np.empty(TILE_BARS, np.int8)
    for start in range(0, n, TILE_BARS):
        m = min(n, start + TILE_BARS) - start
        for c in range(combos):
            held[c] = _mean_sides(
                cumulative, fasts[c], slows[c], small[c], start, held[c], long_only, target[:m]
            )
            _run_tile(
                bars, start, target[:m], floats[c], ints[c], costs, scratch, curves[c], closeds[c]
            )


def score_chunk(
    bars: Bars,
    strategy: str,
    chunk: Sequence[Params],
    config: EngineConfig,
    indicators: Indicators,
) -> list[Metrics]:
    """The metrics of each combination of ``chunk`` (params of ``strategy``), in its order:
    what ``run_strategy(bars, strategy, params, config).metrics`` gives, exactly."""
    if len(bars) < 2:
        raise InvalidBarsError("need at least 2 bars")
    spec = get_strategy(strategy)
    first_floats, first_ints = new_state(config.initial_capital)
    floats, ints = np.tile(first_floats, (len(chunk), 1)), np.tile(first_ints, (len(chunk), 1))
    curves = np.tile(equity_accumulator(config.initial_capital), (len(chunk), 1))
    closeds = np.tile(trade_accumulator(), (len(chunk), 1))
    columns, costs, scratch = (
        (bars.open, bars.high, bars.low, bars.close),
        simulation_costs(config),
        _scratch(),
    )
    periods = [(int(p.fast), int(p.slow)) for p in chunk] if spec is SMA_SPEC else []
    sums = indicators.fixed_point_sums if periods else None
    if sums is not None and all(sums.fits(f) and sums.fits(s) for f, s in periods):
        fasts, slows = (np.array(column, np.int64) for column in zip(*periods, strict=True))
        # Python ints: the product is checked before it could wrap.
        small = np.array([sums.largest * f * s < _INT64_LIMIT for f, s in periods])
        _score_mean_crossovers(
            columns, sums.cumulative, fasts, slows, small, config.mode is PositionMode.LONG_ONLY,
            costs, scratch, floats, ints, curves, closeds,
        )  # fmt: skip
    else:
        for c, params in enumerate(chunk):
            target = as_target(bars, spec.signal(bars, params, indicators), config.mode)
            _score_targets(
                columns, target, floats[c], ints[c], costs, scratch, curves[c], closeds[c]
            )
    year = config.bars_per_year or bars_per_year(bars.open_time_ms)
    return [
        metrics_from(curves[c], closeds[c], config.initial_capital, int(ints[c, S_EXPOSED]), year)
        for c in range(len(chunk))
    ]

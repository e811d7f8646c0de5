"""Performance metrics from an equity curve and a trade log (365-day crypto year)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain._jit import njit, njit_reassociating
from finplat.backtest.domain.trades import TradeLog

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MS_PER_YEAR = 365 * 86_400_000


@dataclass(frozen=True, slots=True)
class Metrics:
    """Summary statistics. Ratios use per-bar simple returns, zero risk-free rate.

    ``max_drawdown`` is a positive fraction of the running peak; its duration is the longest
    run of bars below a previous peak. Undefined ratios (no variance, no trades) are NaN.
    """

    total_return: float
    cagr: float
    annual_volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration_bars: int
    win_rate: float
    profit_factor: float
    n_trades: int
    avg_trade_pnl: float
    avg_trade_return: float
    exposure: float
    final_equity: float
    bars_per_year: float


def bars_per_year(open_time_ms: IntArray) -> float:
    """Bars in a 365-day year at the median bar spacing."""
    if open_time_ms.shape[0] < 2:
        return math.nan
    return MS_PER_YEAR / float(np.median(np.diff(open_time_ms)))


# Slots of the running statistics of an equity curve (``add_equity``).
E_PREV, E_PEAK, E_MAX_DD, E_TROUGH, E_RUN, E_LONGEST, E_COUNT = range(7)
E_SUM, E_SUM_SQ, E_DOWN_SQ = 7, 8, 9
# Bars whose returns are summed together, by a vectorised loop, before they are added to the
# running sums: a curve's pieces start at multiples of it, so every caller sums the same
# blocks in the same way and gets the same result (see ``add_equity``).
BLOCK = 1024
# Slots of the running statistics of closed trades (``add_trades``).
T_COUNT, T_WINS, T_GAINS, T_LOSSES, T_SUM_PNL, T_SUM_RETURN = range(6)


def equity_accumulator(capital: float) -> FloatArray:
    """Running statistics of an equity curve that starts from ``capital``, none added yet."""
    acc = np.zeros(10)
    acc[E_PREV] = acc[E_PEAK] = capital
    acc[E_TROUGH] = capital
    return acc


def trade_accumulator() -> FloatArray:
    """Running statistics of closed trades, none added yet."""
    return np.zeros(6)


@njit
def _return(equity: float, before: float) -> float:
    """A bar's simple return. A function of its own so that ``_block_stats``'s licence to
    reorder additions does not reach its division and subtraction."""
    return equity / before - 1.0 if before > 0.0 else 0.0


@njit
def _from_bits(bits: np.int64) -> float:
    """The float64 whose IEEE-754 bits are ``bits``."""
    return float(np.int64(bits).view(np.float64))


@njit_reassociating
def _block_stats(equity: FloatArray, prev: float) -> tuple[float, float, float, float, float]:
    """(sum, sum of squares, sum of squared losses) of the returns of a block of ``equity``
    after ``prev``, and (lowest, highest) of the block, or (-inf, inf) if it is not all >= +0.

    One vectorised loop, whose divisions (a bar's return) leave time for the rest: the sums,
    and extremes that spare ``_add_drawdowns`` most blocks. The extremes are taken of the
    floats' bits as integers, which order non-negative floats as the floats do and, unlike a
    float min, the compiler vectorises; a negative (or -0.0) float is a negative integer, so
    any such bar shows in the lowest and the block is left to ``_add_drawdowns``.
    """
    total = squares = losses = 0.0
    bits = equity.view(np.int64)
    lowest, highest = np.int64(2**63 - 1), np.int64(-(2**63))
    before = prev
    for i in range(equity.shape[0]):
        e = equity[i]
        r = _return(e, before)
        before = e
        total += r
        squares += r * r
        loss = min(r, 0.0)
        losses += loss * loss
        lowest, highest = min(lowest, bits[i]), max(highest, bits[i])
    if lowest < 0:
        return total, squares, losses, -np.inf, np.inf
    return total, squares, losses, _from_bits(lowest), _from_bits(highest)


# Bars whose extremes are found together before the drawdown loop looks at them one by one.
_SEGMENT = 64


@njit
def _extremes(equity: FloatArray, first: int, end: int) -> tuple[float, float]:
    """(lowest, highest) of ``equity[first:end]``. Four running extremes side by side: one
    would be a chain of dependent comparisons, 4 cycles a bar, that the compiler does not
    vectorise (a min of floats must keep NaN's order); equity is finite, so any order gives
    the same extremes. Unsigned indices: numba wraps a signed one around if negative, a
    select on every load."""
    low0 = low1 = low2 = low3 = np.inf
    high0 = high1 = high2 = high3 = -np.inf
    # Unsigned steps too: an int64 one would make the sum signed again.
    one, two, three, four = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4)
    i, stop = np.uint64(first), np.uint64(end)
    while i + four <= stop:
        a, b, c, d = equity[i], equity[i + one], equity[i + two], equity[i + three]
        low0, high0 = min(low0, a), max(high0, a)
        low1, high1 = min(low1, b), max(high1, b)
        low2, high2 = min(low2, c), max(high2, c)
        low3, high3 = min(low3, d), max(high3, d)
        i += four
    for j in range(i, stop):
        low0, high0 = min(low0, equity[j]), max(high0, equity[j])
    return min(low0, low1, low2, low3), max(high0, high1, high2, high3)


@njit
def _add_drawdowns(acc: FloatArray, equity: FloatArray) -> None:
    """The peak, the lowest equity since it (its trough), the deepest drawdown of the peaks
    before it, and the runs of bars under a peak.

    A peak's drawdown is computed once, from its trough, when a new peak ends it (and for the
    last peak in ``max_drawdown``): ``1 - e / peak`` only grows as ``e`` falls, so that is the
    largest of its bars' drawdowns, bit for bit, without a division per bar, which on a curve
    making new lows bar after bar would sit in the loop's dependency chain. Runs are counted
    in integers, the longest only when a run ends, for the same reason. Most bars of a curve
    are under its peak, or flat at it, a segment at a time: such a segment only lowers the
    trough and lengthens the run, or ends them, which its extremes give without a bar-by-bar
    chain.
    """
    peak, trough, max_dd = acc[E_PEAK], acc[E_TROUGH], acc[E_MAX_DD]
    run, longest = int(acc[E_RUN]), int(acc[E_LONGEST])
    n = equity.shape[0]
    for first in range(0, n, _SEGMENT):
        end = min(n, first + _SEGMENT)
        low, high = _extremes(equity, first, end)
        if high < peak:
            trough = min(trough, low)
            run += end - first
            continue
        if low == high == peak:  # flat at the peak (cash, after a gain): its first bar's end
            if trough < peak:
                max_dd = max(max_dd, 1.0 - trough / peak)
            longest = max(longest, run)
            trough, run = peak, 0
            continue
        for i in range(first, end):
            e = equity[i]
            if e >= peak:
                if trough < peak:
                    max_dd = max(max_dd, 1.0 - trough / peak)
                longest = max(longest, run)
                peak = trough = e
                run = 0
            else:
                trough = min(trough, e)
                run += 1
    acc[E_PEAK], acc[E_TROUGH], acc[E_MAX_DD] = peak, trough, max_dd
    acc[E_RUN], acc[E_LONGEST] = run, longest


def max_drawdown(curve: FloatArray) -> float:
    """The deepest drawdown of a curve's running statistics: its finished peaks' and the
    last one's, as a positive fraction of the peak."""
    peak, trough = float(curve[E_PEAK]), float(curve[E_TROUGH])
    last = 1.0 - trough / peak if trough < peak else 0.0
    return max(float(curve[E_MAX_DD]), last)


@njit
def add_equity(acc: FloatArray, equity: FloatArray) -> None:
    """Add the equity at each close of ``equity`` (the next bars, in order) to ``acc``.

    Returns are summed (and squared) block by block rather than averaged by Welford's update,
    whose running mean divides in its dependency chain, several times slower at a sweep's
    millions of bars per combination; for returns (mean far below their deviation) the sums
    lose nothing measurable. A curve may come in pieces (a sweep's tiles), each starting at a
    multiple of ``BLOCK`` bars: the sums are then the same however it is cut.
    """
    n = equity.shape[0]
    if n == 0:
        return
    if acc[E_COUNT] % BLOCK != 0:
        raise ValueError("a piece of an equity curve must start at a multiple of BLOCK bars")
    prev = acc[E_PREV]
    for start in range(0, n, BLOCK):
        block = equity[start : start + BLOCK]
        m = block.shape[0]
        total, squares, losses, low, high = _block_stats(block, prev)
        acc[E_SUM] += total
        acc[E_SUM_SQ] += squares
        acc[E_DOWN_SQ] += losses
        prev = block[m - 1]
        if high < acc[E_PEAK]:
            # Under the peak throughout, as most blocks are: what each of its segments would
            # do in ``_add_drawdowns``, at once.
            acc[E_TROUGH] = min(acc[E_TROUGH], low)
            acc[E_RUN] += m
        else:
            _add_drawdowns(acc, block)
    acc[E_PREV] = prev
    acc[E_COUNT] += n


@njit
def add_trades(acc: FloatArray, pnl: FloatArray, returns: FloatArray) -> None:
    """Add closed trades (their net pnl and return, in the order they closed) to ``acc``."""
    for i in range(pnl.shape[0]):
        acc[T_COUNT] += 1.0
        acc[T_SUM_PNL] += pnl[i]
        acc[T_SUM_RETURN] += returns[i]
        if pnl[i] > 0.0:
            acc[T_WINS] += 1.0
            acc[T_GAINS] += pnl[i]
        elif pnl[i] < 0.0:
            acc[T_LOSSES] -= pnl[i]


def _cagr(growth: float, years: float) -> float:
    if not years > 0.0:
        return math.nan
    if growth <= 0.0:
        return -1.0
    try:
        return math.exp(math.log(growth) / years) - 1.0
    except OverflowError:
        # Compounding a short, profitable run to a year overflows float64: report +inf.
        return math.inf


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0.0 and math.isfinite(den) else math.nan


def compute_metrics(
    equity: FloatArray,
    trades: TradeLog,
    capital: float,
    exposed_bars: int,
    periods_per_year: float,
) -> Metrics:
    """Metrics for an equity curve sampled at each bar's close, starting from ``capital``."""
    curve = equity_accumulator(capital)
    add_equity(curve, equity)
    closed = trade_accumulator()
    add_trades(closed, trades.pnl, trades.return_)
    return metrics_from(curve, closed, capital, exposed_bars, periods_per_year)


def metrics_from(
    curve: FloatArray,
    closed: FloatArray,
    capital: float,
    exposed_bars: int,
    periods_per_year: float,
) -> Metrics:
    """Metrics from the running statistics of an equity curve (``add_equity``) and of its
    trades (``add_trades``): every backtest's and every sweep combination's, so that they
    are the same numbers."""
    n = int(curve[E_COUNT])
    total, squares = float(curve[E_SUM]), float(curve[E_SUM_SQ])
    mean = total / n if n else math.nan
    # Sum of squared deviations; rounding can leave a hair below 0 for a constant curve.
    deviations = max(squares - total * mean, 0.0) if n else math.nan
    std = math.sqrt(deviations / (n - 1)) if n > 1 else math.nan
    downside = math.sqrt(float(curve[E_DOWN_SQ]) / n) if n else math.nan
    max_dd = max_drawdown(curve)
    final = float(curve[E_PREV]) if n else capital
    growth = final / capital
    years = n / periods_per_year if n else math.nan
    cagr = _cagr(growth, years)
    root = math.sqrt(periods_per_year)
    n_trades = int(closed[T_COUNT])
    gains, losses = float(closed[T_GAINS]), float(closed[T_LOSSES])
    if n_trades == 0:
        profit_factor = math.nan
    elif losses > 0.0:
        profit_factor = gains / losses
    else:
        profit_factor = math.inf if gains > 0.0 else math.nan
    return Metrics(
        total_return=growth - 1.0,
        cagr=cagr,
        annual_volatility=std * root,
        sharpe=_ratio(mean, std) * root,
        sortino=_ratio(mean, downside) * root,
        calmar=_ratio(cagr, max_dd),
        max_drawdown=max_dd,
        max_drawdown_duration_bars=int(max(curve[E_LONGEST], curve[E_RUN])),
        win_rate=float(closed[T_WINS]) / n_trades if n_trades else math.nan,
        profit_factor=profit_factor,
        n_trades=n_trades,
        avg_trade_pnl=float(closed[T_SUM_PNL]) / n_trades if n_trades else math.nan,
        avg_trade_return=float(closed[T_SUM_RETURN]) / n_trades if n_trades else math.nan,
        exposure=exposed_bars / n if n else math.nan,
        final_equity=final,
        bars_per_year=periods_per_year,
    )

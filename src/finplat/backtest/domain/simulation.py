"""The sequential core of the engine: one compiled pass over the bars.

Sizing by a fraction of *current* equity and intrabar stops make each fill depend on the path
so far, so this part has no vector form; it is O(n) numba with the broker rules in ``fills``.

The pass is resumable: ``advance`` runs bars ``start..stop`` from a state it leaves for the
next call, so a sweep can run a tile of bars for many combinations while the tile is in cache
(``sweep_kernel``) and a single backtest runs all bars in one call, through the same code.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain._jit import njit
from finplat.backtest.domain.fills import (
    EXIT_END_OF_DATA,
    EXIT_SIGNAL,
    entry_quantity,
    fee,
    fill_price,
    stop_trigger,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]

# Sentinel for "no stopped-out side waiting for a signal change".
_NOT_BLOCKED = 2

# Columns of the trade buffers.
TI_ENTRY_BAR, TI_EXIT_BAR, TI_DIRECTION, TI_REASON = 0, 1, 2, 3
TF_QTY, TF_ENTRY_PX, TF_EXIT_PX, TF_PNL, TF_FEES = 0, 1, 2, 3, 4

# Slots of the state between two calls of ``advance``: floats and ints apart.
S_CASH, S_QTY, S_ENTRY_PX, S_ENTRY_FEE = 0, 1, 2, 3
S_DIRECTION, S_ENTRY_BAR, S_BLOCKED, S_EXPOSED, S_LAST_TARGET = 0, 1, 2, 3, 4


def new_state(capital: float) -> tuple[FloatArray, IntArray]:
    """The state before the first bar: all cash, flat, no target yet."""
    floats = np.zeros(4)
    floats[S_CASH] = capital
    ints = np.zeros(5, np.int64)
    ints[S_BLOCKED] = _NOT_BLOCKED
    return floats, ints


def trade_buffers(capacity: int) -> tuple[IntArray, FloatArray]:
    """Empty int and float trade columns (``TI_*``, ``TF_*``) for ``capacity`` trades."""
    return np.empty((capacity, 4), np.int64), np.empty((capacity, 5))


@njit
def trade_returns(tf: FloatArray) -> FloatArray:
    """Each trade's net pnl over its entry notional (``tf``: float trade columns)."""
    returns: FloatArray = tf[:, TF_PNL] / (tf[:, TF_QTY] * tf[:, TF_ENTRY_PX])
    return returns


@njit
def _book_exit(
    ti: IntArray,
    tf: FloatArray,
    k: int,
    entry_bar: int,
    exit_bar: int,
    direction: int,
    reason: int,
    qty: float,
    entry_px: float,
    entry_fee: float,
    exit_ref: float,
    slippage: float,
    fee_rate: float,
) -> float:
    """Record trade ``k`` closed at ``exit_ref`` (before slippage); return the cash delta."""
    px = fill_price(exit_ref, -direction, slippage)
    exit_fee = fee(qty, px, fee_rate)
    gross = direction * qty * (px - entry_px)
    ti[k, TI_ENTRY_BAR] = entry_bar
    ti[k, TI_EXIT_BAR] = exit_bar
    ti[k, TI_DIRECTION] = direction
    ti[k, TI_REASON] = reason
    tf[k, TF_QTY] = qty
    tf[k, TF_ENTRY_PX] = entry_px
    tf[k, TF_EXIT_PX] = px
    tf[k, TF_PNL] = gross - entry_fee - exit_fee
    tf[k, TF_FEES] = entry_fee + exit_fee
    return gross - exit_fee


# Targets compared at once while looking for the end of a run: a run is mostly hundreds of
# bars, and comparing a block is a loop the compiler vectorises.
_SCAN = 32


@njit
def _repeats_until(target: Int8Array, i: int, value: int) -> int:
    """The first bar from ``i`` whose previous bar's target is not ``value`` (or the end)."""
    n: int = target.shape[0]
    j = i - 1  # the first bar whose target is not ``value``, from ``i - 1`` on
    while j < n:
        # The block's length known only at run time, unsigned bounds (see ``_hold``) and a
        # flag, not an int64 count: a constant length is unrolled into a chain of byte
        # compares, and a count widens each byte to 8.
        stop = min(j + _SCAN, n)
        differ = False
        for k in range(np.uint64(j), np.uint64(stop)):
            differ |= target[k] != value
        if differ:
            break
        j = stop
    while j < n and target[j] == value:
        j += 1
    return min(j, n - 1) + 1


@njit
def _hold(
    close: FloatArray,
    side: Int8Array,
    equity: FloatArray,
    bars: tuple[int, int],
    direction: int,
    qty: float,
    entry_px: float,
    cash: float,
) -> None:
    """Bars ``bars`` (first, end) in which nothing is traded: the side held and the equity at
    each close. Bounds, not slices: a view costs reference counting, per run of bars."""
    first, end = bars
    # Unsigned bounds: a signed index may be negative, so numba wraps it around, which turns
    # the loop into gathers and scatters instead of plain vector loads and stores.
    for i in range(np.uint64(first), np.uint64(end)):
        side[i] = direction
        equity[i] = cash + direction * qty * (close[i] - entry_px) if direction != 0 else cash


@njit
def advance(
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    target: Int8Array,
    start: int,
    floats: FloatArray,
    ints: IntArray,
    fee_rate: float,
    slippage: float,
    fraction: float,
    stop_loss: float,
    take_profit: float,
    equity: FloatArray,
    side: Int8Array,
    ti: IntArray,
    tf: FloatArray,
) -> int:
    """Simulate bars ``start..start + len(close)``; ``target[i]`` (decided at that bar's close)
    fills at the next bar's open. Returns the number of trades closed in these bars.

    Every array is those bars' part (index 0 is bar ``start``); trades record absolute bar
    numbers. Writes the equity at each close and the side held during each bar (+1/-1/0,
    after the open's fills) and leaves the state for the next bars in ``floats``/``ints``.
    ``ti``/``tf`` hold the trades closed here: twice the bars, plus one, is always enough
    (a bar closes at most a signal exit and a stop). Outputs are kept small (int8 side)
    because page-faulting fresh memory dominates at 1M bars.
    """
    cash, qty, entry_px, entry_fee = (
        floats[S_CASH],
        floats[S_QTY],
        floats[S_ENTRY_PX],
        floats[S_ENTRY_FEE],
    )
    direction, entry_bar, blocked = ints[S_DIRECTION], ints[S_ENTRY_BAR], ints[S_BLOCKED]
    exposed, desired_next = ints[S_EXPOSED], ints[S_LAST_TARGET]
    use_stops = stop_loss > 0.0 or take_profit > 0.0
    k = 0
    m = close.shape[0]
    i = 0
    while i < m:
        desired = desired_next
        desired_next = int(target[i])
        # After a stop/target exit, stay flat until the strategy changes its mind.
        if blocked != _NOT_BLOCKED:
            if desired == blocked:
                desired = 0
            else:
                blocked = _NOT_BLOCKED
        if direction not in (0, desired):
            cash += _book_exit(
                ti, tf, k, entry_bar, start + i, direction, EXIT_SIGNAL,
                qty, entry_px, entry_fee, open_[i], slippage, fee_rate,
            )  # fmt: skip
            k += 1
            direction = 0
        if direction == 0 and desired != 0 and cash > 0.0:
            entry_px = fill_price(open_[i], desired, slippage)
            qty = entry_quantity(cash, fraction, entry_px, fee_rate)
            entry_fee = fee(qty, entry_px, fee_rate)
            cash -= entry_fee
            direction = desired
            entry_bar = start + i
        side[i] = direction
        if direction != 0:
            exposed += 1
            if use_stops:
                # Checked on the entry bar too: the open is the first price of the bar.
                reason, ref = stop_trigger(
                    direction, entry_px, open_[i], high[i], low[i], stop_loss, take_profit
                )
                if reason >= 0:
                    cash += _book_exit(
                        ti, tf, k, entry_bar, start + i, direction, reason,
                        qty, entry_px, entry_fee, ref, slippage, fee_rate,
                    )  # fmt: skip
                    k += 1
                    blocked = desired
                    direction = 0
        equity[i] = cash + direction * qty * (close[i] - entry_px) if direction != 0 else cash
        i += 1
        if use_stops or not (direction == desired_next or (direction == 0 and not cash > 0.0)):
            continue
        # Without stops, the bars whose targets repeat this one's change nothing but the
        # equity: a run the compiler vectorises, most of the bars of most strategies.
        end = _repeats_until(target, i, desired_next)
        _hold(close, side, equity, (i, end), direction, qty, entry_px, cash)
        exposed += (end - i) * (direction != 0)
        desired_next = int(target[end - 1])
        i = end

    floats[S_CASH], floats[S_QTY], floats[S_ENTRY_PX], floats[S_ENTRY_FEE] = (
        cash,
        qty,
        entry_px,
        entry_fee,
    )
    ints[S_DIRECTION], ints[S_ENTRY_BAR], ints[S_BLOCKED] = direction, entry_bar, blocked
    ints[S_EXPOSED], ints[S_LAST_TARGET] = exposed, desired_next
    return k


@njit
def finish(
    last_bar: int,
    last_close: float,
    floats: FloatArray,
    ints: IntArray,
    slippage: float,
    fee_rate: float,
    equity: FloatArray,
    ti: IntArray,
    tf: FloatArray,
    k: int,
) -> int:
    """Liquidate a position still open after the last bar at its close, so every trade is
    realised and counted: book it as trade ``k``, set the last equity (``equity[-1]``) to the
    cash, and return the trades now booked."""
    direction = ints[S_DIRECTION]
    if direction == 0:
        return k
    floats[S_CASH] += _book_exit(
        ti, tf, k, ints[S_ENTRY_BAR], last_bar, direction, EXIT_END_OF_DATA,
        floats[S_QTY], floats[S_ENTRY_PX], floats[S_ENTRY_FEE], last_close, slippage, fee_rate,
    )  # fmt: skip
    ints[S_DIRECTION] = 0
    equity[-1] = floats[S_CASH]
    return k + 1

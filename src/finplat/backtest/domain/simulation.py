"""The sequential core of the engine: one compiled pass over the bars.

Sizing by a fraction of *current* equity and intrabar stops make each fill depend on the path
so far, so this part has no vector form; it is O(n) numba with the broker rules in ``fills``.
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

SimOutput = tuple[FloatArray, Int8Array, int, IntArray, FloatArray]


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


@njit
def simulate(
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    target: Int8Array,
    capital: float,
    fee_rate: float,
    slippage: float,
    fraction: float,
    stop_loss: float,
    take_profit: float,
    capacity: int,
) -> SimOutput:
    """Simulate target positions; ``target[i]`` (decided at bar i's close) fills at bar i+1's open.

    Returns (equity at each close, side held during each bar, bars exposed, int trade
    columns ``TI_*``, float trade columns ``TF_*``). ``capacity`` bounds the trade count: the
    number of target changes plus one is enough. Outputs are kept small (int8 side, trade
    views instead of copies) because page-faulting fresh memory dominates at 1M bars.
    """
    n = close.shape[0]
    equity = np.empty(n)
    side = np.zeros(n, np.int8)
    ti = np.empty((capacity, 4), np.int64)
    tf = np.empty((capacity, 5))
    cash = capital
    direction = 0
    qty = 0.0
    entry_px = 0.0
    entry_fee = 0.0
    entry_bar = 0
    blocked = _NOT_BLOCKED
    k = 0
    exposed = 0
    use_stops = stop_loss > 0.0 or take_profit > 0.0

    for j in range(n):
        desired = int(target[j - 1]) if j > 0 else 0
        # After a stop/target exit, stay flat until the strategy changes its mind.
        if blocked != _NOT_BLOCKED:
            if desired == blocked:
                desired = 0
            else:
                blocked = _NOT_BLOCKED
        if direction not in (0, desired):
            cash += _book_exit(
                ti, tf, k, entry_bar, j, direction, EXIT_SIGNAL,
                qty, entry_px, entry_fee, open_[j], slippage, fee_rate,
            )  # fmt: skip
            k += 1
            direction = 0
        if direction == 0 and desired != 0 and cash > 0.0:
            entry_px = fill_price(open_[j], desired, slippage)
            qty = entry_quantity(cash, fraction, entry_px, fee_rate)
            entry_fee = fee(qty, entry_px, fee_rate)
            cash -= entry_fee
            direction = desired
            entry_bar = j
        if direction != 0:
            exposed += 1
            side[j] = direction
            if use_stops:
                # Checked on the entry bar too: the open is the first price of the bar.
                reason, ref = stop_trigger(
                    direction, entry_px, open_[j], high[j], low[j], stop_loss, take_profit
                )
                if reason >= 0:
                    cash += _book_exit(
                        ti, tf, k, entry_bar, j, direction, reason,
                        qty, entry_px, entry_fee, ref, slippage, fee_rate,
                    )  # fmt: skip
                    k += 1
                    blocked = desired
                    direction = 0
        equity[j] = cash + direction * qty * (close[j] - entry_px) if direction != 0 else cash

    if direction != 0:
        # Liquidate at the last close so every trade is realised and counted.
        cash += _book_exit(
            ti, tf, k, entry_bar, n - 1, direction, EXIT_END_OF_DATA,
            qty, entry_px, entry_fee, close[n - 1], slippage, fee_rate,
        )  # fmt: skip
        k += 1
        equity[n - 1] = cash

    return equity, side, exposed, ti[:k], tf[:k]

"""The sequential core of the portfolio backtest: one compiled pass over bars x symbols.

Every rebalance sizes its orders from the portfolio value at the fill bar's open and pays for
them from one shared cash balance, so each fill depends on the path so far: O(n x m) numba.

The arithmetic is vectorbt 1.2.0's ``Portfolio.from_orders`` with ``size_type='targetpercent'``,
``cash_sharing=True`` and ``call_seq='auto'`` (``vectorbt.portfolio.nb.execute_order_nb``,
``buy_nb``, ``sell_nb``), step for step and in the same order of float operations, so the two
agree to rounding:

* The portfolio value that sizes a bar's orders is taken once, before its first order: cash
  plus every position at this open (vectorbt's ``val_price=inf`` with ``update_value=False``).
  A symbol's order is ``weight x value / open - position`` units.
* Orders run in ascending order of their approximate value (``weight x value - position x
  open``), ties in symbol order: sells first, so they free cash for the buys.
* A buy needing more cash than there is (fees and slippage on a fully invested book) is cut
  to what the cash pays for, fee included; a sell is never cut (short proceeds are cash).
* Like vectorbt, sums whose result is rounding residue snap to exactly 0 (``_add``), and
  orders under ``min_units`` are dust and not filled.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain._jit import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# vectorbt.utils.math_: numbers this close count as equal (relative, then absolute).
_REL_TOL = 1e-9
_ABS_TOL = 1e-12

# Columns of the fill buffers.
FI_BAR, FI_SYMBOL = 0, 1
FF_SIZE, FF_PRICE, FF_FEE = 0, 1, 2

# (cash, position, signed units filled (0: no fill), fill price, fee)
OrderOutcome = tuple[float, float, float, float, float]
# (equity at each close, cash at each close, positions at each close, bars with any position,
#  int fill columns FI_*, float fill columns FF_*)
PortfolioSimOutput = tuple[FloatArray, FloatArray, FloatArray, int, IntArray, FloatArray]


@njit
def _is_close(a: float, b: float) -> bool:
    """vectorbt's ``is_close_nb`` for finite numbers."""
    if a == b:
        return True
    return abs(a - b) <= max(_REL_TOL * max(abs(a), abs(b)), _ABS_TOL)


@njit
def _is_less(a: float, b: float) -> bool:
    """``a < b`` by more than rounding (vectorbt's ``is_less_nb``)."""
    return not _is_close(a, b) and a < b


@njit
def _add(a: float, b: float) -> float:
    """``a + b``, or exactly 0 when the sum is rounding residue (vectorbt's ``add_nb``).

    Without the snap, closing a position could leave 1e-17 units that later orders and
    exposure would count as a position.
    """
    if np.sign(a) != np.sign(b):
        if _is_close(abs(a), abs(b)):
            return 0.0
    elif _is_close(a + b, 0.0):
        return 0.0
    return a + b


@njit
def _snap_zero(x: float) -> float:
    """0 for rounding residue around 0; vectorbt applies this to the state before each order."""
    return 0.0 if _is_close(x, 0.0) else x


@njit
def _buy(
    cash: float,
    position: float,
    units: float,
    price: float,
    fee_rate: float,
    slippage: float,
    min_units: float,
) -> OrderOutcome:
    """Buy ``units`` (> 0) at ``price`` worsened by slippage, cut to the cash available."""
    paid = price * (1.0 + slippage)
    if cash == 0.0:
        return cash, position, 0.0, 0.0, 0.0
    notional = units * paid
    wanted_fee = notional * fee_rate
    wanted_cost = notional + wanted_fee
    if _is_close(wanted_cost, cash) or wanted_cost < cash:
        filled, fee, cost = units, wanted_fee, wanted_cost
    else:
        # Spend all the cash: notional x (1 + fee rate) = cash.
        affordable = cash / (1.0 + fee_rate)
        if affordable <= 0.0:
            return cash, position, 0.0, 0.0, 0.0
        filled, fee, cost = affordable / paid, cash - affordable, cash
    if _is_close(units, 0.0) or _is_less(filled, min_units):
        return cash, position, 0.0, 0.0, 0.0
    return _add(cash, -cost), _add(position, filled), filled, paid, fee


@njit
def _sell(
    cash: float,
    position: float,
    units: float,
    price: float,
    fee_rate: float,
    slippage: float,
    min_units: float,
) -> OrderOutcome:
    """Sell (or sell short) ``units`` (>= 0) at ``price`` worsened by slippage."""
    received = price * (1.0 - slippage)
    if _is_close(units, 0.0) or _is_less(units, min_units):
        return cash, position, 0.0, 0.0, 0.0
    notional = units * received
    fee = notional * fee_rate
    proceeds = _add(notional, -fee)
    if proceeds < 0.0:
        return cash, position, 0.0, 0.0, 0.0
    return cash + proceeds, _add(position, -units), -units, received, fee


@njit
def order_target_weight(
    weight: float,
    value: float,
    cash: float,
    position: float,
    price: float,
    fee_rate: float,
    slippage: float,
    min_units: float,
) -> OrderOutcome:
    """Trade one symbol towards ``weight`` x ``value`` (valued at ``price``, this open).

    Returns the new cash and position (residue snapped to 0 even without a fill, as vectorbt
    does), the signed units filled (0: no fill), the fill price and the fee.
    """
    cash = _snap_zero(cash)
    position = _snap_zero(position)
    value = _snap_zero(value)
    if value <= 0.0:
        # A wiped-out book has nothing to size a weight from: no order.
        return cash, position, 0.0, 0.0, 0.0
    units = weight * value
    units /= price
    units -= position
    if units > 0.0:
        return _buy(cash, position, units, price, fee_rate, slippage, min_units)
    return _sell(cash, position, -units, price, fee_rate, slippage, min_units)


@njit
def _weight_changed(weights: FloatArray, decided: int, symbol: int) -> bool:
    """Whether the weight decided at bar ``decided`` differs from the one before (from 0)."""
    if decided == 0:
        return bool(weights[0, symbol] != 0.0)
    return bool(weights[decided, symbol] != weights[decided - 1, symbol])


@njit
def first_levered_bar(weights: FloatArray, limit: float) -> int:
    """The first bar whose sum(|w|) exceeds ``limit``, or -1 (one pass, no temporaries)."""
    n, m = weights.shape
    for bar in range(n):
        gross = 0.0
        for symbol in range(m):
            gross += abs(weights[bar, symbol])
        if gross > limit:
            return bar
    return -1


@njit
def count_orders(weights: FloatArray) -> int:
    """Orders the weights place: one per changed weight, the last bar's excluded (never filled)."""
    n, m = weights.shape
    count = 0
    for decided in range(n - 1):
        for symbol in range(m):
            if _weight_changed(weights, decided, symbol):
                count += 1
    return count


@njit
def _sort_sells_first(keys: FloatArray, symbols: IntArray, count: int) -> None:
    """Stable insertion sort of ``symbols[:count]`` by ascending ``keys`` (vectorbt's order).

    A key is an order's value, weight x value - position x open: negative for a sell.
    """
    for j in range(1, count):
        key, symbol = keys[j], symbols[j]
        i = j - 1
        while i >= 0 and keys[i] > key:
            keys[i + 1], symbols[i + 1] = keys[i], symbols[i]
            i -= 1
        keys[i + 1], symbols[i + 1] = key, symbol


@njit
def simulate_portfolio(
    open_: FloatArray,
    close: FloatArray,
    weights: FloatArray,
    capital: float,
    fee_rate: float,
    slippage: float,
    min_units: float,
    capacity: int,
) -> PortfolioSimOutput:
    """Simulate target weights; ``weights[i]`` (decided at bar i's close) fills at bar i+1's open.

    Arrays are (n_bars, n_symbols), C-contiguous. Returns (equity at each close, cash at each
    close, units held at each close, bars with any position, int fill columns ``FI_*``, float
    fill columns ``FF_*``). ``capacity`` bounds the fills: ``count_orders(weights)``.
    """
    n, m = close.shape
    equity = np.empty(n)
    cash_at_close = np.empty(n)
    held = np.empty((n, m))
    fill_int = np.empty((capacity, 2), np.int64)
    fill_float = np.empty((capacity, 3))
    positions = np.zeros(m)
    keys = np.empty(m)
    queue = np.empty(m, np.int64)
    cash = capital
    n_fills = 0
    exposed = 0
    for bar in range(n):
        # The rebalance stays in this loop: as a function taking these arrays it measured
        # 15-20 % slower at 1M bars.
        decided = bar - 1
        count = 0
        for symbol in range(m if bar > 0 else 0):
            if _weight_changed(weights, decided, symbol):
                queue[count] = symbol
                count += 1
        if count > 0:
            # One value for all the bar's orders, taken before the first one.
            value = cash
            for symbol in range(m):
                if positions[symbol] != 0.0:
                    value += positions[symbol] * open_[bar, symbol]
            for k in range(count):
                symbol = queue[k]
                keys[k] = weights[decided, symbol] * value - positions[symbol] * open_[bar, symbol]
            _sort_sells_first(keys, queue, count)
            for k in range(count):
                symbol = queue[k]
                cash, positions[symbol], units, price, fee = order_target_weight(
                    weights[decided, symbol], value, cash, positions[symbol],
                    open_[bar, symbol], fee_rate, slippage, min_units,
                )  # fmt: skip
                if units != 0.0:
                    fill_int[n_fills, FI_BAR] = bar
                    fill_int[n_fills, FI_SYMBOL] = symbol
                    fill_float[n_fills, FF_SIZE] = units
                    fill_float[n_fills, FF_PRICE] = price
                    fill_float[n_fills, FF_FEE] = fee
                    n_fills += 1
        assets = 0.0
        in_market = False
        for symbol in range(m):
            assets += positions[symbol] * close[bar, symbol]
            held[bar, symbol] = positions[symbol]
            in_market = in_market or positions[symbol] != 0.0
        equity[bar] = cash + assets
        cash_at_close[bar] = cash
        exposed += int(in_market)
    return equity, cash_at_close, held, exposed, fill_int[:n_fills], fill_float[:n_fills]

"""Broker model: fill prices with slippage, fees, sizing and intrabar stop/target checks.

All helpers are numba functions so the simulation kernel inlines them.
"""

from __future__ import annotations

from finplat.backtest.domain._jit import njit

# Exit reasons recorded per trade.
EXIT_SIGNAL = 0
EXIT_STOP_LOSS = 1
EXIT_TAKE_PROFIT = 2
EXIT_END_OF_DATA = 3
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "end_of_data")


@njit
def fill_price(reference: float, side: int, slippage: float) -> float:
    """Price actually paid (side +1, buy) or received (side -1, sell): always adverse."""
    return reference * (1.0 + side * slippage)


@njit
def fee(quantity: float, price: float, fee_rate: float) -> float:
    """Proportional fee on the traded notional."""
    return quantity * price * fee_rate


@njit
def entry_quantity(equity: float, fraction: float, price: float, fee_rate: float) -> float:
    """Units bought with ``fraction`` of equity such that notional plus entry fee fits in it."""
    return equity * fraction / (price * (1.0 + fee_rate))


@njit
def stop_trigger(
    direction: int,
    entry: float,
    bar_open: float,
    high: float,
    low: float,
    stop_loss: float,
    take_profit: float,
) -> tuple[int, float]:
    """(exit reason, reference price) if a stop-loss/take-profit triggers in this bar, else (-1, 0).

    ``stop_loss``/``take_profit`` are fractions of the entry price; 0 disables. When both
    levels lie inside one bar the stop is assumed first (pessimistic: the path inside a bar is
    unknown). A gap through a level fills at the open, not at the level.
    """
    if direction > 0:
        if stop_loss > 0.0:
            level = entry * (1.0 - stop_loss)
            if low <= level:
                return EXIT_STOP_LOSS, min(bar_open, level)
        if take_profit > 0.0:
            level = entry * (1.0 + take_profit)
            if high >= level:
                return EXIT_TAKE_PROFIT, max(bar_open, level)
    else:
        if stop_loss > 0.0:
            level = entry * (1.0 + stop_loss)
            if high >= level:
                return EXIT_STOP_LOSS, max(bar_open, level)
        if take_profit > 0.0:
            level = entry * (1.0 - take_profit)
            if low <= level:
                return EXIT_TAKE_PROFIT, min(bar_open, level)
    return -1, 0.0

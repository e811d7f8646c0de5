"""Trade log: columnar (cheap for millions of bars) with per-trade records on demand."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.fills import EXIT_REASONS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip. Prices are fill prices (slippage included); pnl is net of both fees."""

    entry_bar: int
    exit_bar: int
    entry_time_ms: int
    exit_time_ms: int
    direction: int
    size: float
    entry_price: float
    exit_price: float
    pnl: float
    return_: float
    fees: float
    exit_reason: str


@dataclass(frozen=True, slots=True)
class TradeLog:
    """All trades as parallel arrays, in exit order.

    Entry happens at the open of ``entry_bar``; exit at the open of ``exit_bar`` for signal
    exits, inside it for stops, and at its close for the end-of-data liquidation.
    ``return_`` is pnl over the entry notional.
    """

    entry_bar: IntArray
    exit_bar: IntArray
    entry_time_ms: IntArray
    exit_time_ms: IntArray
    direction: Int8Array
    size: FloatArray
    entry_price: FloatArray
    exit_price: FloatArray
    pnl: FloatArray
    return_: FloatArray
    fees: FloatArray
    exit_reason: Int8Array

    def __len__(self) -> int:
        return int(self.entry_bar.shape[0])

    def records(self) -> list[Trade]:
        """The trades as objects (allocates one per trade)."""
        return [
            Trade(
                int(self.entry_bar[i]),
                int(self.exit_bar[i]),
                int(self.entry_time_ms[i]),
                int(self.exit_time_ms[i]),
                int(self.direction[i]),
                float(self.size[i]),
                float(self.entry_price[i]),
                float(self.exit_price[i]),
                float(self.pnl[i]),
                float(self.return_[i]),
                float(self.fees[i]),
                EXIT_REASONS[int(self.exit_reason[i])],
            )
            for i in range(len(self))
        ]

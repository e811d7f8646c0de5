"""SMA crossover on real BTCUSDT 1m klines: our engine vs backtesting.py (the reference).

Conventions aligned, and why:

* Fills: backtesting.py with ``trade_on_close=False`` fills a market order placed in
  ``next()`` at bar i's close at bar i+1's open, as we do. ``exclusive_orders=True`` makes a
  reversal close the old trade and open the new one at that same open, sized from the equity
  after the close, as we do.
* Fees: ``commission=0.001`` charges 0.1 % of notional on entry and again on exit, exactly
  our ``fee_bps=10``. Its sizing, ``floor(equity * size / (price * (1 + commission)))`` units,
  is ours except for the floor.
* Units: backtesting.py trades whole units. ``FractionalBacktest(fractional_unit=1e-10)``
  trades whole 1e-10 BTC, so sizes differ from ours (exact fractions) by < 1e-10 BTC and the
  cash it leaves unused makes equity differ by ~1e-10 relative.
* Warm-up: backtesting.py skips the first bar on which every indicator is defined (its
  ``next()`` starts one bar later). The reference strategy therefore exposes fast - slow with
  the warm-up filled by 0 (a tie: no action), so its first decision is at bar slow-1, as ours.
* Rule: state-based, as our ``sma_crossover``: long while SMA(fast) > SMA(slow), short while
  below (long-only: flat), ties keep the position. The SMAs come from pandas, not our code.
* End: backtesting.py leaves the last trade open (mark-to-market equity, trade not listed);
  we liquidate it at the last close and pay the exit fee. So we compare all its closed trades
  with our first ones, the equity curves on every bar but the last, and our final equity with
  its final equity minus the exit fee on its open position (size x last close x 0.1 %).
* Slippage is not compared: backtesting.py's ``spread`` adjusts the entry price only.

Tolerances: trade bars identical; prices rtol 1e-12 (both are raw opens); sizes rtol 1e-8;
pnl and equity rtol 1e-8.
"""

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from backtesting import Strategy  # type: ignore[import-untyped]
from backtesting.lib import FractionalBacktest  # type: ignore[import-untyped]

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig, PositionMode, run_strategy

FAST, SLOW, COMMISSION, CASH, UNIT = 10, 30, 0.001, 10_000.0, 1e-10


def sma_spread(close: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    series = pd.Series(close)
    diff = series.rolling(FAST).mean() - series.rolling(SLOW).mean()
    out: npt.NDArray[np.float64] = np.nan_to_num(diff.to_numpy(), nan=0.0)
    return out


class ReferenceSmaCross(Strategy):  # type: ignore[misc]
    long_only = False

    def init(self) -> None:
        self.spread = self.I(sma_spread, self.data.Close)

    def next(self) -> None:
        spread = self.spread[-1]
        if spread > 0 and not self.position.is_long:
            self.buy()
        elif spread < 0:
            if self.long_only:
                if self.position.is_long:
                    self.position.close()
            elif not self.position.is_short:
                self.sell()


def reference_run(bars: Bars, long_only: bool) -> pd.Series:
    frame = pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
         "Volume": bars.volume},
        index=pd.to_datetime(bars.open_time_ms, unit="ms"),
    )  # fmt: skip
    bt = FractionalBacktest(
        frame,
        ReferenceSmaCross,
        cash=CASH,
        commission=COMMISSION,
        trade_on_close=False,
        exclusive_orders=True,
        fractional_unit=UNIT,
    )
    stats: pd.Series = bt.run(long_only=long_only)
    return stats


# Expected: the open last trade, and a pandas deprecation inside backtesting.py itself.
@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek is deprecated")
@pytest.mark.parametrize("mode", [PositionMode.LONG_SHORT, PositionMode.LONG_ONLY])
def test_sma_crossover_matches_backtesting_py(q4_bars: Bars, mode: PositionMode) -> None:
    ref = reference_run(q4_bars, long_only=mode is PositionMode.LONG_ONLY)
    ours = run_strategy(
        q4_bars,
        "sma_crossover",
        {"fast": FAST, "slow": SLOW},
        EngineConfig(initial_capital=CASH, fee_bps=COMMISSION * 1e4, mode=mode),
    )
    ref_trades: pd.DataFrame = ref["_trades"]
    k = len(ref_trades)
    assert k > 50  # a real comparison, not a handful of trades
    trades = ours.trades
    # All its trades are closed ones; ours has exactly one more: the liquidated open one.
    assert len(trades) == k + 1
    assert trades.exit_reason[-1] == 3
    np.testing.assert_array_equal(ref_trades["EntryBar"], trades.entry_bar[:k])
    np.testing.assert_array_equal(ref_trades["ExitBar"], trades.exit_bar[:k])
    np.testing.assert_allclose(ref_trades["EntryPrice"], trades.entry_price[:k], rtol=1e-12)
    np.testing.assert_allclose(ref_trades["ExitPrice"], trades.exit_price[:k], rtol=1e-12)
    signed_size = trades.size[:k] * trades.direction[:k]
    np.testing.assert_allclose(ref_trades["Size"], signed_size, rtol=1e-8)
    np.testing.assert_allclose(ref_trades["PnL"], trades.pnl[:k], rtol=1e-8, atol=1e-6)

    ref_equity = ref["_equity_curve"]["Equity"].to_numpy()
    np.testing.assert_allclose(ref_equity[:-1], ours.equity[:-1], rtol=1e-8)
    # Its live position is counted in 1e-10 BTC units.
    open_size = abs(float(ref["_strategy"].position.size)) * UNIT
    exit_fee = open_size * q4_bars.close[-1] * COMMISSION
    assert ours.metrics.final_equity == pytest.approx(ref_equity[-1] - exit_fee, rel=1e-8)

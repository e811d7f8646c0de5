"""Engine on tiny hand-computed examples: fill timing, fees, slippage, sizing, stops."""

import math

import numpy as np
import pytest

from finplat.backtest.domain.engine import EngineConfig, PositionMode, run_backtest, run_strategy
from finplat.backtest.domain.errors import InvalidBarsError, InvalidConfigError
from tests.unit.backtest.helpers import MINUTE_MS, make_bars

CAPITAL = 10_000.0


def test_long_round_trip_fills_at_next_open_with_fees() -> None:
    bars = make_bars(close=[101, 103, 105, 102, 100], open_=[100, 102, 104, 103, 101])
    res = run_backtest(bars, [1, 1, 0, 0, 0], EngineConfig(fee_bps=10))
    # Decided at bar 0's close -> bought at bar 1's open (102); sold at bar 3's open (103).
    qty = CAPITAL / (102 * 1.001)
    entry_fee, exit_fee = qty * 102 * 0.001, qty * 103 * 0.001
    cash = CAPITAL - entry_fee
    np.testing.assert_allclose(
        res.equity,
        [CAPITAL, cash + qty * 1, cash + qty * 3, cash + qty - exit_fee, cash + qty - exit_fee],
        rtol=1e-12,
    )
    (trade,) = res.trades.records()
    assert (trade.entry_bar, trade.exit_bar, trade.direction) == (1, 3, 1)
    assert (trade.entry_time_ms, trade.exit_time_ms) == (MINUTE_MS, 3 * MINUTE_MS)
    assert (trade.entry_price, trade.exit_price, trade.exit_reason) == (102, 103, "signal")
    assert trade.size == pytest.approx(qty, rel=1e-12)
    assert trade.fees == pytest.approx(entry_fee + exit_fee, rel=1e-12)
    assert trade.pnl == pytest.approx(qty - entry_fee - exit_fee, rel=1e-12)
    assert trade.return_ == pytest.approx((qty - entry_fee - exit_fee) / (qty * 102), rel=1e-12)
    assert res.metrics.exposure == pytest.approx(2 / 5)
    assert res.side.tolist() == [0, 1, 1, 0, 0]


def test_flip_long_to_short_with_slippage() -> None:
    bars = make_bars(close=[100, 105, 100, 95, 95], open_=[100, 100, 110, 90, 95])
    res = run_backtest(bars, [1, -1, -1, 0, 0], EngineConfig(slippage_bps=10))
    buy1 = 100 * 1.001
    qty1 = CAPITAL / buy1
    sell2 = 110 * 0.999  # closes the long and opens the short at the same open
    cash = CAPITAL + qty1 * (sell2 - buy1)
    qty2 = cash / sell2
    cover = 95 * 1.001
    trades = res.trades
    assert trades.entry_bar.tolist() == [1, 2]
    assert trades.exit_bar.tolist() == [2, 4]
    assert trades.direction.tolist() == [1, -1]
    np.testing.assert_allclose(trades.entry_price, [buy1, sell2], rtol=1e-12)
    np.testing.assert_allclose(trades.exit_price, [sell2, cover], rtol=1e-12)
    np.testing.assert_allclose(trades.size, [qty1, qty2], rtol=1e-12)
    np.testing.assert_allclose(
        res.equity,
        [CAPITAL, CAPITAL + qty1 * (105 - buy1), cash + qty2 * (sell2 - 100),
         cash + qty2 * (sell2 - 95), cash + qty2 * (sell2 - cover)],
        rtol=1e-12,
    )  # fmt: skip


def test_long_only_treats_short_targets_as_flat() -> None:
    bars = make_bars(close=[100, 105, 100, 95, 95], open_=[100, 100, 110, 90, 95])
    cfg = EngineConfig(slippage_bps=10, mode=PositionMode.LONG_ONLY)
    res = run_backtest(bars, [1, -1, -1, 0, 0], cfg)
    qty = CAPITAL / (100 * 1.001)
    assert len(res.trades) == 1
    assert res.metrics.final_equity == pytest.approx(
        CAPITAL + qty * (110 * 0.999 - 100 * 1.001), rel=1e-12
    )


def test_fraction_of_equity_sizing() -> None:
    bars = make_bars(close=[100, 100, 120], open_=[100, 100, 120])
    res = run_backtest(bars, [1, 1, 1], EngineConfig(fraction=0.25, fee_bps=20))
    qty = 0.25 * CAPITAL / (100 * 1.002)
    assert res.trades.size[0] == pytest.approx(qty, rel=1e-12)
    # Liquidated at the last close (120) with the exit fee.
    expected = CAPITAL - qty * 100 * 0.002 + qty * 20 - qty * 120 * 0.002
    assert res.metrics.final_equity == pytest.approx(expected, rel=1e-12)
    assert res.trades.records()[0].exit_reason == "end_of_data"


def test_stop_loss_then_wait_for_a_new_signal() -> None:
    bars = make_bars(
        close=[100, 99, 96, 98, 98, 100],
        open_=[100, 100, 99, 97, 98, 100],
        high=[101, 101, 100, 99, 99, 101],
        low=[99, 99, 94, 96, 97, 99],
    )
    res = run_backtest(bars, [1, 1, 1, 0, 1, 1], EngineConfig(stop_loss=0.05))
    # Long 100 units at 100; bar 2 trades down to 94 -> stopped at the 95 level (-500).
    # The target stays +1, so no re-entry until it goes 0 then +1 again (entry at bar 5).
    trades = res.trades.records()
    assert [(t.entry_bar, t.exit_bar, t.exit_reason) for t in trades] == [
        (1, 2, "stop_loss"),
        (5, 5, "end_of_data"),
    ]
    assert trades[0].exit_price == 95
    assert trades[0].pnl == pytest.approx(-500)
    assert trades[1].size == pytest.approx(9_500 / 100)
    np.testing.assert_allclose(res.equity, [CAPITAL, 9_900, 9_500, 9_500, 9_500, 9_500])
    assert res.metrics.exposure == pytest.approx(3 / 6)


def test_take_profit_gap_fills_at_the_open() -> None:
    bars = make_bars(
        close=[100, 100, 86], open_=[100, 100, 85], high=[100, 101, 88], low=[100, 99, 84]
    )
    res = run_backtest(bars, [-1, -1, -1], EngineConfig(take_profit=0.10))
    # Short 100 at 100; the level is 90 but bar 2 opens at 85, so the fill is 85.
    (trade,) = res.trades.records()
    assert (trade.direction, trade.exit_reason, trade.exit_price) == (-1, "take_profit", 85)
    np.testing.assert_allclose(res.equity, [CAPITAL, CAPITAL, CAPITAL + 1_500])


def test_stop_first_when_both_levels_are_inside_the_entry_bar() -> None:
    bars = make_bars(close=[100, 101], open_=[100, 100], high=[100, 105], low=[100, 97])
    res = run_backtest(bars, [1, 1], EngineConfig(stop_loss=0.02, take_profit=0.03))
    (trade,) = res.trades.records()
    assert (trade.entry_bar, trade.exit_bar, trade.exit_reason) == (1, 1, "stop_loss")
    assert trade.exit_price == 98
    assert res.equity[-1] == pytest.approx(CAPITAL - 200)


def test_last_bar_target_is_never_filled() -> None:
    bars = make_bars(close=[100, 101, 102])
    res = run_backtest(bars, [0, 0, 1], EngineConfig(fee_bps=10))
    assert len(res.trades) == 0
    assert res.equity.tolist() == [CAPITAL] * 3


def test_zero_signal_metrics() -> None:
    bars = make_bars(close=[100, 101, 102, 101])
    m = run_backtest(bars, np.zeros(4, dtype=np.int8), EngineConfig(fee_bps=50)).metrics
    assert (m.total_return, m.max_drawdown, m.n_trades, m.exposure) == (0, 0, 0, 0)
    assert math.isnan(m.sharpe)
    assert math.isnan(m.win_rate)
    assert m.bars_per_year == 365 * 24 * 60


def test_run_strategy_by_name() -> None:
    bars = make_bars([1, 2, 3, 2, 1, 1, 2])
    res = run_strategy(bars, "sma_crossover", {"fast": 1, "slow": 2})
    # Signal [0, 1, 1, -1, -1, -1, 1] -> long at bar 2, short at bar 4, long at the last bar
    # (bar 6 decides +1 too late to fill).
    assert res.trades.entry_bar.tolist() == [2, 4]
    assert res.trades.direction.tolist() == [1, -1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_capital": 0},
        {"fee_bps": -1},
        {"slippage_bps": 2000},
        {"fraction": 0},
        {"fraction": 1.5},
        {"stop_loss": 0},
        {"take_profit": 1.0},
        {"bars_per_year": -5},
        {"mode": "sideways"},
    ],
)
def test_invalid_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidConfigError):
        EngineConfig(**kwargs)  # type: ignore[arg-type]


def test_invalid_targets_and_bars() -> None:
    bars = make_bars([1, 2, 3])
    with pytest.raises(InvalidBarsError, match="shape"):
        run_backtest(bars, [0, 1])
    with pytest.raises(InvalidBarsError, match="-1, 0 or"):
        run_backtest(bars, [0, 2, 0])
    with pytest.raises(InvalidBarsError, match="-1, 0 or"):
        run_backtest(bars, [0, 0.5, 0])
    with pytest.raises(InvalidBarsError, match="at least 2"):
        run_backtest(make_bars([1]), [0])

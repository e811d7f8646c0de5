"""Portfolio backtest on tiny hand-computed examples: one shared cash balance, sells before
buys, fees and slippage, long-only clipping, and every bad input's error message."""

import math

import numpy as np
import numpy.typing as npt
import pytest

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import PositionMode
from finplat.backtest.domain.errors import InvalidBarsError, InvalidConfigError
from finplat.backtest.domain.portfolio import (
    Panel,
    PortfolioConfig,
    PortfolioResult,
    run_portfolio,
)
from tests.unit.backtest.helpers import MINUTE_MS, make_bars

CAPITAL = 1_000.0

# Two symbols over four one-minute bars; AAA is column 0, BBB column 1.
AAA_OPEN, AAA_CLOSE = [10.0, 20.0, 22.0, 24.0], [10.0, 21.0, 23.0, 25.0]
BBB_OPEN, BBB_CLOSE = [10.0, 10.0, 12.0, 12.0], [10.0, 11.0, 12.0, 13.0]


def two_symbols() -> Panel:
    return Panel.from_bars(
        {
            "AAA": make_bars(close=AAA_CLOSE, open_=AAA_OPEN),
            "BBB": make_bars(close=BBB_CLOSE, open_=BBB_OPEN),
        }
    )


def run(
    weights: list[list[float]],
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    mode: PositionMode = PositionMode.LONG_SHORT,
    min_order_units: float = 1e-8,
) -> PortfolioResult:
    config = PortfolioConfig(CAPITAL, fee_bps, slippage_bps, mode, min_order_units)
    return run_portfolio(two_symbols(), weights, config)


def fills_of(result: PortfolioResult) -> list[tuple[int, str, float, float, float]]:
    f = result.fills
    return [
        (int(f.bar[k]), result.symbols[f.symbol[k]], float(f.size[k]), float(f.price[k]),
         float(f.fee[k]))
        for k in range(len(f))
    ]  # fmt: skip


def test_one_cash_balance_and_sells_before_buys() -> None:
    res = run([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    # Bar 1's open: value 1,000 -> 500 / 20 = 25 AAA, 500 / 10 = 50 BBB; cash 0.
    # Bar 2's open: value 25 x 22 + 50 x 12 = 1,150. AAA, column 0, wants 1,150 / 22 units, a
    # buy of 600 that the cash (0) cannot pay: the sale of BBB (600) goes first and pays it.
    aaa_after = 1_150 / 22
    assert [(b, s, p) for b, s, _, p, _ in fills_of(res)] == [
        (1, "AAA", 20.0), (1, "BBB", 10.0), (2, "BBB", 12.0), (2, "AAA", 22.0),
    ]  # fmt: skip
    np.testing.assert_allclose(
        [size for _, _, size, _, _ in fills_of(res)], [25, 50, -50, aaa_after - 25], rtol=1e-12
    )
    np.testing.assert_allclose(
        res.positions, [[0.0, 0.0], [25.0, 50.0], [aaa_after, 0.0], [aaa_after, 0.0]], rtol=1e-12
    )
    np.testing.assert_allclose(res.cash, [CAPITAL, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(
        res.equity, [CAPITAL, 25 * 21 + 50 * 11, aaa_after * 23, aaa_after * 25], rtol=1e-12
    )
    assert res.fills.time_ms.tolist() == [MINUTE_MS, MINUTE_MS, 2 * MINUTE_MS, 2 * MINUTE_MS]


def test_orders_only_where_the_weight_changes() -> None:
    # Weights held: positions keep their units and drift with prices; nothing is traded.
    res = run([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    assert len(res.fills) == 2
    np.testing.assert_allclose(res.positions[1:], [[25, 50]] * 3)
    np.testing.assert_allclose(res.equity, [CAPITAL, 1075, 25 * 23 + 50 * 12, 25 * 25 + 50 * 13])


def test_a_zero_first_weight_places_no_order_and_the_last_weights_never_fill() -> None:
    res = run([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.5, 0.5]])
    assert len(res.fills) == 0
    assert res.equity.tolist() == [CAPITAL] * 4


def test_fees_and_slippage_cut_the_last_buy_to_the_cash_left() -> None:
    res = run([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], fee_bps=10, slippage_bps=5)
    # Bar 1's open: AAA 25 units (500 / 20) at 20 x 1.0005, plus 0.1 % fee.
    aaa_px = 20 * 1.0005
    aaa_fee = 25 * aaa_px * 0.001
    cash = CAPITAL - 25 * aaa_px - aaa_fee
    # BBB wants 50 units (500 / 10), 500.75 with costs, more than the cash left: it gets the
    # units the cash pays for with the fee, notional x 1.001 = cash.
    bbb_px = 10 * 1.0005
    bbb_notional = cash / 1.001
    bbb_units = bbb_notional / bbb_px
    expected = [
        (1, "AAA", 25.0, aaa_px, aaa_fee),
        (1, "BBB", bbb_units, bbb_px, cash - bbb_notional),
    ]
    for got, want in zip(fills_of(res), expected, strict=True):
        assert got[:2] == want[:2]
        np.testing.assert_allclose(got[2:], want[2:], rtol=1e-12)
    np.testing.assert_allclose(res.cash[1:], 0.0, atol=1e-9)
    np.testing.assert_allclose(res.equity[1], 25 * 21 + bbb_units * 11, rtol=1e-12)


def test_short_sale_adds_its_proceeds_to_the_shared_cash() -> None:
    res = run([[0.5, 0.5], [0.5, -0.5], [0.5, -0.5], [0.5, -0.5]], fee_bps=10, slippage_bps=5)
    bbb_units = (CAPITAL - 25 * 20 * 1.0005 * 1.001) / 1.001 / (10 * 1.0005)
    # Bar 2's open: value 25 x 22 + BBB x 12; BBB goes to -value / 2 / 12 units.
    value = 25 * 22 + bbb_units * 12
    sold = value / 2 / 12 + bbb_units
    px = 12 * 0.9995
    proceeds = sold * px * (1 - 0.001)
    (*_, (bar, symbol, size, price, fee)) = fills_of(res)
    assert (bar, symbol) == (2, "BBB")
    np.testing.assert_allclose([size, price, fee], [-sold, px, sold * px * 0.001], rtol=1e-12)
    np.testing.assert_allclose(res.positions[2], [25, -value / 24], rtol=1e-12)
    np.testing.assert_allclose(res.cash[2], proceeds, rtol=1e-12)
    np.testing.assert_allclose(res.equity[3], proceeds + 25 * 25 - value / 24 * 13, rtol=1e-12)


def test_long_only_clips_negative_weights_to_flat() -> None:
    weights = [[-0.5, 0.5], [-0.3, 0.5], [0.5, -0.2], [0.5, -0.2]]
    long_only = run(weights, mode=PositionMode.LONG_ONLY)
    # AAA: -0.5 and -0.3 are both flat (no order). BBB: 50 bought at bar 1 (500 / 10).
    # Bar 3's open: value 500 cash + 50 x 12 = 1,100; BBB sold out first, then AAA buys
    # 550 / 24 units.
    fills = fills_of(long_only)
    assert [(b, s) for b, s, *_ in fills] == [(1, "BBB"), (3, "BBB"), (3, "AAA")]
    np.testing.assert_allclose([f[2] for f in fills], [50, -50, 550 / 24], rtol=1e-12)
    np.testing.assert_allclose(long_only.positions[3], [550 / 24, 0], rtol=1e-12)
    # Long/short: the same weights short AAA at bar 1 and trade it again at bars 2 and 3.
    long_short = run(weights)
    assert long_short.positions[1, 0] == pytest.approx(-25.0, rel=1e-12)
    assert [(b, s) for b, s, *_ in fills_of(long_short)] == [
        (1, "AAA"), (1, "BBB"), (2, "AAA"), (3, "BBB"), (3, "AAA"),
    ]  # fmt: skip


def test_orders_under_the_minimum_size_are_dust() -> None:
    res = run([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], min_order_units=30.0)
    assert fills_of(res) == [(1, "BBB", 50.0, 10.0, 0.0)]


def test_contributions_add_up_to_the_result_and_metrics_count_fills() -> None:
    res = run([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], fee_bps=10)
    aaa, bbb = res.contributions
    assert (aaa.symbol, aaa.n_fills, bbb.symbol, bbb.n_fills) == ("AAA", 2, "BBB", 2)
    assert aaa.pnl + bbb.pnl == pytest.approx(res.equity[-1] - CAPITAL, rel=1e-12)
    assert aaa.fees + bbb.fees == pytest.approx(float(res.fills.fee.sum()), rel=1e-12)
    # BBB: bought with all the cash AAA left (1,000 - 500 x 1.001), so notional x 1.001 =
    # that cash at 10; sold at 12 less 0.1 %; nothing left.
    spent = CAPITAL - 500 * 1.001
    bbb_units = spent / 1.001 / 10
    assert bbb.pnl == pytest.approx(bbb_units * 12 * 0.999 - spent, rel=1e-12)
    assert bbb.final_position == 0.0
    m = res.metrics
    assert m.n_trades == 4
    assert math.isnan(m.win_rate)
    assert math.isnan(m.avg_trade_pnl)
    assert m.exposure == pytest.approx(3 / 4)
    assert m.final_equity == res.equity[-1]


# Bad input: each error says what is wrong and where.


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.zeros((4, 3)), r"shape \(n_bars, n_symbols\) = \(4, 2\) .* got \(4, 3\)"),
        (np.zeros(4), r"got \(4,\)"),
        ([[0, 0], [0, math.nan], [0, 0], [0, 0]], r"finite: BBB has nan at bar 1, open time 60000"),
        ([[0, 0], [0, 0], [math.inf, 0], [0, 0]], r"finite: AAA has inf at bar 2"),
        ([[0.5, 0.5], [0.7, -0.4], [0, 0], [0, 0]], r"sum\(\|w\|\) is 1.1 > 1 at bar 1"),
        ([["a", "b"]] * 4, r"target_weights must be numbers"),
    ],
)
def test_bad_weights_are_rejected(weights: npt.ArrayLike, message: str) -> None:
    with pytest.raises(InvalidBarsError, match=message):
        run_portfolio(two_symbols(), weights)


def test_leverage_is_checked_on_the_weights_actually_held() -> None:
    # Long-only: -0.9 is flat, so 0.9 + |-0.9| is not leverage.
    run([[0.9, -0.9], [0.9, -0.9], [0.0, 0.0], [0.0, 0.0]], mode=PositionMode.LONG_ONLY)
    with pytest.raises(InvalidBarsError, match=r"sum\(\|w\|\) is 1.8 > 1 at bar 0"):
        run([[0.9, -0.9], [0.9, -0.9], [0.0, 0.0], [0.0, 0.0]])


def test_weights_summing_to_one_up_to_rounding_are_allowed() -> None:
    third = 1 / 3
    panel = Panel.from_bars({s: make_bars(close=[1, 2, 3]) for s in ("A", "B", "C")})
    res = run_portfolio(panel, [[third, third, third + 1e-12]] * 3)
    assert len(res.fills) == 3


def test_bars_with_different_open_times_are_not_aligned_silently() -> None:
    btc = make_bars(close=[1, 2, 3, 4])
    gap = Bars(np.array([0, 1, 3, 4]) * MINUTE_MS, *[np.ones(4)] * 5)
    with pytest.raises(
        InvalidBarsError,
        match=r"ETHUSDT: open times differ from BTCUSDT's at row 2: "
        r"180000 \(1970-01-01T00:03:00Z\) vs 120000",
    ):
        Panel.from_bars({"BTCUSDT": btc, "ETHUSDT": gap})
    with pytest.raises(
        InvalidBarsError,
        match=r"SOLUSDT: 2 bars but BTCUSDT has 4; first open time only BTCUSDT has: 120000",
    ):
        Panel.from_bars({"BTCUSDT": btc, "ETHUSDT": btc, "SOLUSDT": btc.slice(0, 2)})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("close", math.nan, r"BBB: close must be finite and > 0, got nan at bar 2"),
        ("open", 0.0, r"BBB: open must be finite and > 0, got 0.0 at bar 2"),
    ],
)
def test_prices_must_be_finite_and_positive(field: str, value: float, message: str) -> None:
    panel = two_symbols()
    prices = {f: getattr(panel, f).copy() for f in ("open", "high", "low", "close")}
    prices[field][2, 1] = value
    with pytest.raises(InvalidBarsError, match=message):
        Panel(panel.symbols, panel.open_time_ms, **prices)


def test_panel_shape_and_symbols_are_checked() -> None:
    panel = two_symbols()
    with pytest.raises(InvalidBarsError, match=r"close must have shape \(4, 2\), got \(4, 1\)"):
        Panel(panel.symbols, panel.open_time_ms, panel.open, panel.high, panel.low,
              panel.close[:, :1])  # fmt: skip
    with pytest.raises(InvalidBarsError, match="distinct symbols"):
        Panel(("AAA", "AAA"), panel.open_time_ms, panel.open, panel.high, panel.low, panel.close)
    with pytest.raises(InvalidBarsError, match="one or more symbols"):
        Panel.from_bars({})
    with pytest.raises(InvalidBarsError, match="at least 2 bars"):
        run_portfolio(panel.slice(0, 1), [[0.5, 0.5]])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"initial_capital": 0.0}, "initial_capital must be > 0"),
        ({"fee_bps": -1.0}, r"fee_bps must be in \[0, 1000\)"),
        ({"slippage_bps": 1000.0}, r"slippage_bps must be in \[0, 1000\)"),
        ({"min_order_units": -1.0}, "min_order_units must be >= 0"),
        ({"bars_per_year": 0.0}, "bars_per_year must be > 0 or None"),
        ({"mode": "both"}, r"mode must be one of \['long_only', 'long_short'\]"),
    ],
)
def test_bad_config_is_rejected(config: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        PortfolioConfig(**config)  # type: ignore[arg-type]

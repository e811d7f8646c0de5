"""Portfolio backtest on real Binance klines: ours vs vectorbt 1.2.0 (the reference).

Reference call, for every case::

    vbt.Portfolio.from_orders(close=close, size=size, size_type="targetpercent", price=open,
                              fees=0.001, slippage=0.0005, cash_sharing=True, group_by=True,
                              call_seq="auto", init_cash=CAPITAL)

Data: (a) BTCUSDT + ETHUSDT 1m over the whole ETHUSDT 1m file (2024-10-01 03:00 ..
2024-11-04 20:19, 50,000 bars; BTCUSDT cut to the same minutes); (b) BTCUSDT + ETHUSDT +
SOLUSDT 30m, all the REST responses hold (2024-09-23 .. 2025-01-12, 5,376 bars).

Conventions, and how they are mapped:

* Timing. Our weights of bar i (decided at its close) fill at bar i+1's open. vectorbt fills
  row j's order at row j's ``price``. So ``price`` is the open, not shifted, and the *size* is
  shifted one row down: ``size[j] = weights[j - 1]``, ``size[0] = NaN``; the last bar's
  weights are filled by neither. With the default ``val_price=inf`` vectorbt values the
  group at the order price, our "portfolio value at the fill bar's open".
* Equity is read at the close by both: ``close`` is the close, and vectorbt's
  ``value()`` (cash + units x close) is our ``equity`` on the same row.
* Orders. We order a symbol only when its weight changes (first bar: a nonzero weight).
  vectorbt orders every non-NaN size, so ``size`` is NaN where the weight is unchanged.
  vectorbt sorts NaN orders last in ``call_seq='auto'``; the rest in ascending order value,
  ties in column order, as we do (sells first).
* Costs. ``fees`` and ``slippage`` are fractions: 10 bps = 0.001, 5 bps = 0.0005; both apply
  to the slipped fill price. Its default ``min_size=1e-8`` is our ``min_order_units``.
* Long-only. We clip negative weights to 0 and order where the *clipped* weight changes.
  vectorbt gets the raw weights with ``direction='longonly'`` (a negative target sells the
  long out and never opens a short), NaN where the *raw* weight is unchanged. A raw change the
  clip hides (-0.5 -> -0.25) is then an order for a position vectorbt does not hold, which it
  rejects without a record: both fill the same orders.
* Order records: vectorbt's ``size`` is unsigned with a ``side`` (0 buy, 1 sell); ours is
  signed. Both list fills in execution order: by bar, then sells before buys. Long/short,
  that order is the same; long-only, vectorbt ranks a bar's sells by the raw (negative)
  weight and we by the clipped one (0), so its sells may run in another order. Sells need no
  cash, so that changes nothing but the order of the records (and float sums by ~1e-16):
  fills are compared sorted by (bar, symbol), and in execution order when long/short.

Tolerances: equity, fills (size, price, fee) and positions rtol 1e-8; cash rtol 1e-8 with
an absolute 1e-8 x capital, because a fully invested book holds ~0 cash, which vectorbt
rebuilds by summing its order records' cash flows (residue ~1e-12) while we carry it.
"""

import json
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import vectorbt as vbt  # type: ignore[import-untyped]

from finplat.backtest.adapters.kline_files import load_bars
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import BPS, PositionMode
from finplat.backtest.domain.portfolio import Panel, PortfolioConfig, run_portfolio
from finplat.binance.archive import daily_kline_paths, ohlcv_files
from tests.paths import market_data_dir

FloatArray = npt.NDArray[np.float64]

CAPITAL, FEE_BPS, SLIPPAGE_BPS = 10_000.0, 10.0, 5.0
FAST, SLOW = 10, 30
RTOL = 1e-8


def _require(paths: list[Path]) -> list[Path]:
    if not paths or not all(p.is_file() for p in paths):
        pytest.fail(f"kline data not found under {market_data_dir()}; set FINPLAT_DATA_DIR")
    return paths


def _rest_bars(symbol: str) -> Bars:
    """Every saved ``GET /api/v3/klines`` 30m response of ``symbol``, in time order."""
    files = sorted((market_data_dir() / "klines_rest_json" / "30m" / symbol).glob("*.json"))
    rows = [row for path in _require(files) for row in json.loads(path.read_text())]
    table = np.array([[float(v) for v in row[:6]] for row in rows])
    return Bars(table[:, 0].astype(np.int64), *table[:, 1:].T)


def _cut(bars: Bars, first_ms: int, last_ms: int) -> Bars:
    times = bars.open_time_ms
    start, stop = np.searchsorted(times, [first_ms, last_ms + 1])
    return bars.slice(int(start), int(stop))


@pytest.fixture(scope="module")
def btc_eth_1m() -> Panel:
    eth = load_bars(_require(ohlcv_files(market_data_dir(), "ETHUSDT")))
    btc_paths = daily_kline_paths(
        market_data_dir(), "BTCUSDT", "1m", date(2024, 10, 1), date(2024, 11, 4)
    )
    btc = load_bars(_require(btc_paths))
    btc = _cut(btc, int(eth.open_time_ms[0]), int(eth.open_time_ms[-1]))
    return Panel.from_bars({"BTCUSDT": btc, "ETHUSDT": eth})


@pytest.fixture(scope="module")
def three_30m() -> Panel:
    return Panel.from_bars({s: _rest_bars(s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")})


def _sma(close: FloatArray, window: int) -> FloatArray:
    out: FloatArray = pd.DataFrame(close).rolling(window).mean().to_numpy()
    return out


def sma_sign_weights(panel: Panel) -> FloatArray:
    """Each symbol +1/n while SMA(10) > SMA(30), -1/n while below, 0 on ties and warm-up."""
    spread = np.nan_to_num(_sma(panel.close, FAST) - _sma(panel.close, SLOW))
    out: FloatArray = np.sign(spread) / panel.n_symbols
    return out


def trend_score_weights(panel: Panel) -> FloatArray:
    """Half a share for SMA(10) vs SMA(30), half for close vs SMA(10): -1/n .. +1/n in steps."""
    fast = _sma(panel.close, FAST)
    score = 0.5 * np.sign(np.nan_to_num(fast - _sma(panel.close, SLOW)))
    score += 0.5 * np.sign(np.nan_to_num(panel.close - fast))
    out: FloatArray = score / panel.n_symbols
    return out


def orders_where_changed(weights: FloatArray) -> FloatArray:
    """vectorbt sizes: weights shifted to their fill row, NaN where unchanged."""
    changed = np.empty(weights.shape, dtype=bool)
    changed[0] = weights[0] != 0.0
    changed[1:] = weights[1:] != weights[:-1]
    size = np.full(weights.shape, np.nan)
    size[1:] = np.where(changed[:-1], weights[:-1], np.nan)
    return size


class Reference(NamedTuple):
    """vectorbt's results as plain arrays."""

    equity: FloatArray
    cash: FloatArray
    positions: FloatArray
    orders: npt.NDArray[np.void]  # its order records: idx, col, size, price, fees, side


def vectorbt_reference(panel: Panel, weights: FloatArray, mode: PositionMode) -> Reference:
    index = pd.to_datetime(panel.open_time_ms, unit="ms")

    def frame(values: FloatArray) -> pd.DataFrame:
        return pd.DataFrame(values, index=index, columns=list(panel.symbols))

    direction = "longonly" if mode is PositionMode.LONG_ONLY else "both"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vectorbt's own deprecation chatter
        pf = vbt.Portfolio.from_orders(
            close=frame(panel.close),
            size=frame(orders_where_changed(weights)),
            size_type="targetpercent",
            direction=direction,
            price=frame(panel.open),
            fees=FEE_BPS * BPS,
            slippage=SLIPPAGE_BPS * BPS,
            cash_sharing=True,
            group_by=True,
            call_seq="auto",
            init_cash=CAPITAL,
        )
        return Reference(
            pf.value().to_numpy(), pf.cash().to_numpy(), pf.assets().to_numpy(), pf.orders.records
        )


CASES: dict[str, tuple[Callable[[Panel], FloatArray], PositionMode]] = {
    "sma_sign_long_short": (sma_sign_weights, PositionMode.LONG_SHORT),
    "trend_score_long_only": (trend_score_weights, PositionMode.LONG_ONLY),
}


@pytest.mark.parametrize("dataset", ["btc_eth_1m", "three_30m"])
@pytest.mark.parametrize("case", list(CASES))
def test_equal_to_vectorbt_from_orders(
    dataset: str, case: str, request: pytest.FixtureRequest
) -> None:
    panel: Panel = request.getfixturevalue(dataset)
    make_weights, mode = CASES[case]
    weights = make_weights(panel)
    config = PortfolioConfig(CAPITAL, FEE_BPS, SLIPPAGE_BPS, mode)
    ours = run_portfolio(panel, weights, config)
    ref = vectorbt_reference(panel, weights, mode)

    np.testing.assert_allclose(ours.equity, ref.equity, rtol=RTOL)
    np.testing.assert_allclose(ours.cash, ref.cash, rtol=RTOL, atol=RTOL * CAPITAL)
    np.testing.assert_allclose(ours.positions, ref.positions, rtol=RTOL, atol=1e-12)

    records = ref.orders
    fills = ours.fills
    assert len(fills) == len(records)
    if mode is PositionMode.LONG_SHORT:
        assert fills.bar.tolist() == records["idx"].tolist()
        assert fills.symbol.tolist() == records["col"].tolist()
    theirs = np.lexsort((records["col"], records["idx"]))
    got = np.lexsort((fills.symbol, fills.bar))
    assert fills.bar[got].tolist() == records["idx"][theirs].tolist()
    assert fills.symbol[got].tolist() == records["col"][theirs].tolist()
    signed = np.where(records["side"] == 0, records["size"], -records["size"])
    np.testing.assert_allclose(fills.size[got], signed[theirs], rtol=RTOL)
    np.testing.assert_allclose(fills.price[got], records["price"][theirs], rtol=RTOL)
    np.testing.assert_allclose(fills.fee[got], records["fees"][theirs], rtol=RTOL)

    fees_by_symbol = np.bincount(records["col"], records["fees"], panel.n_symbols)
    np.testing.assert_allclose([c.fees for c in ours.contributions], fees_by_symbol, rtol=RTOL)
    assert sum(c.n_fills for c in ours.contributions) == len(records)
    # Enough happened for the comparison to mean something.
    assert len(fills) > 100
    if mode is PositionMode.LONG_SHORT:
        assert bool((ours.positions < 0).any())

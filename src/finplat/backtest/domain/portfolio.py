"""Multi-asset portfolio backtest: target weights per symbol, one shared cash balance.

Timing rule (as the single-asset engine): the weights decided at bar i's close are filled at
bar i+1's open, so a strategy never trades on a price it has not seen; the weights of the
last bar are never filled. Equity, cash and positions are read at each bar's close.

Orders and sizing (vectorbt's ``Portfolio.from_orders`` with ``size_type='targetpercent'``,
``cash_sharing=True``, ``call_seq='auto'``, ``price`` = the fill bar's open; see
``portfolio_simulation`` for the arithmetic):

* A weight is the fraction of portfolio value a symbol should hold; negative is short.
  Long-only mode clips negative weights to 0 (flat), as the engine does for a -1 target.
  No leverage: sum(|w|) <= 1 on every bar.
* A symbol gets an order only on a bar whose weight differs from the previous bar's (on
  the first bar: any nonzero weight), vectorbt's usual NaN size where the weight is
  unchanged. In between, positions keep their units and their weights drift with prices.
* The value that sizes a bar's orders is cash plus every position at that open, taken once
  before the bar's first order. Sells run before buys, so they free cash first.
* Fees are ``fee_bps`` of each fill's notional at its fill price; slippage moves the fill
  price ``slippage_bps`` against us. Because a weight is sized at the raw open, a fully
  invested book cannot pay for the last buy's slippage and fee: that buy is cut to the cash
  left (fee included). Orders under ``min_order_units`` (vectorbt's ``min_size``) are dust
  and not filled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import (
    BPS,
    PositionMode,
    check_costs,
    checked_mode,
    config_error,
)
from finplat.backtest.domain.errors import InvalidBarsError
from finplat.backtest.domain.metrics import Metrics, bars_per_year, compute_metrics
from finplat.backtest.domain.portfolio_simulation import (
    FF_FEE,
    FF_PRICE,
    FF_SIZE,
    FI_BAR,
    FI_SYMBOL,
    count_orders,
    first_levered_bar,
    simulate_portfolio,
)
from finplat.backtest.domain.trades import TradeLog

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Weights that sum to 1 up to float rounding (3 x 1/3, 10 x 0.1) are not leverage.
LEVERAGE_TOLERANCE = 1e-9
_PRICE_FIELDS = ("open", "high", "low", "close")


def _moment(open_time_ms: int) -> str:
    iso = datetime.fromtimestamp(open_time_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{open_time_ms} ({iso})"


def _readonly_times(values: npt.ArrayLike) -> IntArray:
    arr = np.ascontiguousarray(values, dtype=np.int64).view()
    arr.flags.writeable = False
    return arr


def _readonly_prices(values: npt.ArrayLike) -> FloatArray:
    # A read-only view: no copy for C-contiguous float64 input, the caller's flags untouched.
    arr = np.ascontiguousarray(values, dtype=np.float64).view()
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, slots=True)
class Panel:
    """Bars of several symbols on the same open times: prices are (n_bars, n_symbols).

    Column k of every price array is ``symbols[k]``. Fields are read-only (views of the given
    arrays when they already are C-contiguous float64: do not mutate the inputs).
    """

    symbols: tuple[str, ...]
    open_time_ms: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray | None = None  # None: not known, NaN in `bars`

    def __post_init__(self) -> None:
        symbols = tuple(self.symbols)
        if not symbols or len(set(symbols)) != len(symbols):
            raise InvalidBarsError(f"need one or more distinct symbols, got {symbols}")
        object.__setattr__(self, "symbols", symbols)
        times = _readonly_times(self.open_time_ms)
        if times.ndim != 1:
            raise InvalidBarsError(f"open_time_ms must be 1-D, got shape {times.shape}")
        object.__setattr__(self, "open_time_ms", times)
        shape = (times.shape[0], len(symbols))
        for name in _PRICE_FIELDS:
            prices = _readonly_prices(getattr(self, name))
            if prices.shape != shape:
                raise InvalidBarsError(f"{name} must have shape {shape}, got {prices.shape}")
            self._require_positive(name, prices)
            object.__setattr__(self, name, prices)
        if shape[0] > 1 and not bool(np.all(np.diff(times) > 0)):
            raise InvalidBarsError("open_time_ms must be strictly increasing")
        if self.volume is not None:
            volume = _readonly_prices(self.volume)
            if volume.shape != shape:
                raise InvalidBarsError(f"volume must have shape {shape}, got {volume.shape}")
            object.__setattr__(self, "volume", volume)

    def _require_positive(self, name: str, prices: FloatArray) -> None:
        # Orders are sized by dividing by the open and valued at the close: both must be real.
        bad = ~(np.isfinite(prices) & (prices > 0.0))
        if bool(bad.any()):
            bar, column = divmod(int(np.argmax(bad)), prices.shape[1])
            when = _moment(int(self.open_time_ms[bar]))
            raise InvalidBarsError(
                f"{self.symbols[column]}: {name} must be finite and > 0, got "
                f"{prices[bar, column]} at bar {bar}, open time {when}"
            )

    @staticmethod
    def from_bars(bars_by_symbol: Mapping[str, Bars]) -> Panel:
        """The panel of ``bars_by_symbol``, columns in the mapping's order.

        Every symbol must have exactly the same open times (no inner join, no fill):
        otherwise InvalidBarsError names the symbol and the first open time not shared, since
        dropping or inventing bars silently would change every fill after the gap.
        """
        if not bars_by_symbol:
            raise InvalidBarsError("need bars of one or more symbols")
        (first_symbol, first), *others = bars_by_symbol.items()
        for symbol, bars in others:
            _require_same_times(first_symbol, first.open_time_ms, symbol, bars.open_time_ms)
        columns = list(bars_by_symbol.values())
        return Panel(
            tuple(bars_by_symbol),
            first.open_time_ms,
            *(np.column_stack([getattr(b, f) for b in columns])
              for f in (*_PRICE_FIELDS, "volume")),
        )  # fmt: skip

    def __len__(self) -> int:
        return int(self.open_time_ms.shape[0])

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    def slice(self, start: int, stop: int) -> Panel:
        """Rows ``start:stop`` as a new panel (views, no copy)."""
        rows = slice(start, stop)
        return Panel(
            self.symbols, self.open_time_ms[rows], self.open[rows], self.high[rows],
            self.low[rows], self.close[rows], None if self.volume is None else self.volume[rows],
        )  # fmt: skip

    def bars(self, column: int) -> Bars:
        """The bars of ``symbols[column]`` (views, no copy)."""
        volume = np.full(len(self), np.nan) if self.volume is None else self.volume[:, column]
        return Bars(
            self.open_time_ms, self.open[:, column], self.high[:, column], self.low[:, column],
            self.close[:, column], volume,
        )  # fmt: skip


def _require_same_times(ref_symbol: str, ref_times: IntArray, symbol: str, times: IntArray) -> None:
    common = min(ref_times.shape[0], times.shape[0])
    differs = np.flatnonzero(ref_times[:common] != times[:common])
    if differs.size:
        row = int(differs[0])
        raise InvalidBarsError(
            f"{symbol}: open times differ from {ref_symbol}'s at row {row}: "
            f"{_moment(int(times[row]))} vs {_moment(int(ref_times[row]))}"
        )
    if ref_times.shape[0] != times.shape[0]:
        owner, longer = (ref_symbol, ref_times) if common < ref_times.shape[0] else (symbol, times)
        raise InvalidBarsError(
            f"{symbol}: {times.shape[0]} bars but {ref_symbol} has {ref_times.shape[0]}; "
            f"first open time only {owner} has: {_moment(int(longer[common]))}"
        )


@dataclass(frozen=True, slots=True)
class PortfolioConfig:
    """Execution assumptions of a portfolio backtest (basis points of each fill)."""

    initial_capital: float = 10_000.0
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    mode: PositionMode = PositionMode.LONG_SHORT
    min_order_units: float = 1e-8  # smaller orders are dust (vectorbt's min_size default)
    bars_per_year: float | None = None  # None: derived from the median bar spacing

    def __post_init__(self) -> None:
        check_costs(self, self.initial_capital, self.fee_bps, self.slippage_bps)
        if not (math.isfinite(self.min_order_units) and self.min_order_units >= 0.0):
            raise config_error(self, "min_order_units must be >= 0")
        object.__setattr__(self, "mode", checked_mode(self, self.bars_per_year, self.mode))


@dataclass(frozen=True, slots=True)
class PortfolioFills:
    """Every fill in execution order: by bar, and within a bar sells before buys.

    ``symbol`` indexes ``Panel.symbols``; ``size`` is signed units (+ bought, - sold);
    ``price`` is the fill price (the open, slippage included); ``fee`` is in cash.
    """

    bar: IntArray
    time_ms: IntArray
    symbol: IntArray
    size: FloatArray
    price: FloatArray
    fee: FloatArray

    def __len__(self) -> int:
        return int(self.bar.shape[0])


@dataclass(frozen=True, slots=True)
class SymbolContribution:
    """What one symbol added to the result.

    ``pnl`` is net of fees: the cash flows of its fills plus its final position marked at the
    last close, so the symbols' pnl sums to final equity minus initial capital.
    """

    symbol: str
    pnl: float
    fees: float
    n_fills: int
    final_position: float


@dataclass(frozen=True, slots=True)
class PortfolioResult:
    """Equity, cash and units held at each bar's close; the fills; metrics; contributions.

    ``metrics`` are ``compute_metrics``'s equity-based figures. A rebalancing portfolio has
    no round trips, so its trade metrics are redefined: ``n_trades`` is the number of fills;
    ``win_rate``, ``profit_factor``, ``avg_trade_pnl`` and ``avg_trade_return`` are NaN (see
    ``contributions`` for each symbol's pnl); ``exposure`` is the fraction of bars holding
    any position.
    """

    config: PortfolioConfig
    symbols: tuple[str, ...]
    open_time_ms: IntArray
    equity: FloatArray
    cash: FloatArray
    positions: FloatArray  # (n_bars, n_symbols) units, after the open's fills
    fills: PortfolioFills
    metrics: Metrics
    contributions: tuple[SymbolContribution, ...]


def _as_weights(panel: Panel, target_weights: npt.ArrayLike, mode: PositionMode) -> FloatArray:
    """Validated (n_bars, n_symbols) float64 weights, clipped to >= 0 in long-only mode."""
    try:
        raw = np.asarray(target_weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidBarsError(f"target_weights must be numbers: {exc}") from None
    shape = (len(panel), panel.n_symbols)
    if raw.shape != shape:
        raise InvalidBarsError(
            f"target_weights must have shape (n_bars, n_symbols) = {shape} for symbols "
            f"{panel.symbols}, got {raw.shape}"
        )
    if not bool(np.isfinite(raw).all()):
        not_finite = ~np.isfinite(raw)
        bar, column = divmod(int(np.argmax(not_finite)), shape[1])
        raise InvalidBarsError(
            f"target_weights must be finite: {panel.symbols[column]} has {raw[bar, column]} "
            f"at bar {bar}, open time {_moment(int(panel.open_time_ms[bar]))}"
        )
    weights = np.maximum(raw, 0.0) if mode is PositionMode.LONG_ONLY else raw
    bar = first_levered_bar(weights, 1.0 + LEVERAGE_TOLERANCE)
    if bar >= 0:
        gross = float(np.abs(weights[bar]).sum())
        raise InvalidBarsError(
            f"target_weights must not lever the portfolio: sum(|w|) is {gross:.12g} > 1 "
            f"at bar {bar}, open time {_moment(int(panel.open_time_ms[bar]))}"
        )
    return np.ascontiguousarray(weights)


def _no_round_trips() -> TradeLog:
    ints, floats, small = np.empty(0, np.int64), np.empty(0), np.empty(0, np.int8)
    return TradeLog(ints, ints, ints, ints, small, floats, floats, floats, floats, floats,
                    floats, small)  # fmt: skip


def _contributions(
    panel: Panel, fills: PortfolioFills, final_positions: FloatArray
) -> tuple[SymbolContribution, ...]:
    m = panel.n_symbols
    cash_flow = -fills.size * fills.price - fills.fee
    pnl = np.bincount(fills.symbol, cash_flow, m) + final_positions * panel.close[-1]
    fees = np.bincount(fills.symbol, fills.fee, m)
    counts = np.bincount(fills.symbol, minlength=m)
    return tuple(
        SymbolContribution(s, float(pnl[k]), float(fees[k]), int(counts[k]),
                           float(final_positions[k]))
        for k, s in enumerate(panel.symbols)
    )  # fmt: skip


def run_portfolio(
    panel: Panel, target_weights: npt.ArrayLike, config: PortfolioConfig | None = None
) -> PortfolioResult:
    """Simulate ``target_weights`` ((n_bars, n_symbols) fractions of portfolio value).

    InvalidBarsError for fewer than 2 bars or for weights of the wrong shape, not finite, or
    with sum(|w|) > 1 on some bar (leverage).
    """
    cfg = config or PortfolioConfig()
    if len(panel) < 2:
        raise InvalidBarsError("need at least 2 bars")
    weights = _as_weights(panel, target_weights, cfg.mode)
    equity, cash, positions, exposed, fi, ff = simulate_portfolio(
        panel.open, panel.close, weights, cfg.initial_capital, cfg.fee_bps * BPS,
        cfg.slippage_bps * BPS, cfg.min_order_units, count_orders(weights),
    )  # fmt: skip
    fill_bar = fi[:, FI_BAR]
    fills = PortfolioFills(
        bar=fill_bar,
        time_ms=panel.open_time_ms[fill_bar],
        symbol=fi[:, FI_SYMBOL],
        size=ff[:, FF_SIZE],
        price=ff[:, FF_PRICE],
        fee=ff[:, FF_FEE],
    )
    periods = cfg.bars_per_year or bars_per_year(panel.open_time_ms)
    metrics = compute_metrics(equity, _no_round_trips(), cfg.initial_capital, exposed, periods)
    return PortfolioResult(
        config=cfg,
        symbols=panel.symbols,
        open_time_ms=panel.open_time_ms,
        equity=equity,
        cash=cash,
        positions=positions,
        fills=fills,
        metrics=replace(metrics, n_trades=len(fills)),
        contributions=_contributions(panel, fills, positions[-1]),
    )

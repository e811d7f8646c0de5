"""Backtest engine: validated config, target positions in, trades/equity/metrics out.

Timing rule: the target computed from bar i (at its close) is filled at bar i+1's open, so a
strategy can never trade on a price it has not seen. Fees and slippage are basis points of
each fill; sizing is a fraction of current equity in fractional units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.errors import InvalidBarsError, InvalidConfigError
from finplat.backtest.domain.metrics import Metrics, bars_per_year, compute_metrics
from finplat.backtest.domain.simulation import (
    S_EXPOSED,
    TF_ENTRY_PX,
    TF_EXIT_PX,
    TF_FEES,
    TF_PNL,
    TF_QTY,
    TI_DIRECTION,
    TI_ENTRY_BAR,
    TI_EXIT_BAR,
    TI_REASON,
    advance,
    finish,
    new_state,
    trade_buffers,
    trade_returns,
)
from finplat.backtest.domain.strategies import Indicators, Params, get_strategy
from finplat.backtest.domain.trades import TradeLog

FloatArray = npt.NDArray[np.float64]
Int8Array = npt.NDArray[np.int8]
BPS = 1e-4


class PositionMode(StrEnum):
    LONG_ONLY = "long_only"
    LONG_SHORT = "long_short"


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Execution assumptions. ``stop_loss``/``take_profit`` are fractions of the entry price."""

    initial_capital: float = 10_000.0
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    mode: PositionMode = PositionMode.LONG_SHORT
    fraction: float = 1.0
    stop_loss: float | None = None
    take_profit: float | None = None
    bars_per_year: float | None = None  # None: derived from the median bar spacing

    def __post_init__(self) -> None:
        check_costs(self, self.initial_capital, self.fee_bps, self.slippage_bps)
        if not 0.0 < self.fraction <= 1.0:
            raise config_error(self, "fraction must be in (0, 1] (no leverage)")
        for name in ("stop_loss", "take_profit"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise config_error(self, f"{name} must be in (0, 1) or None")
        object.__setattr__(self, "mode", checked_mode(self, self.bars_per_year, self.mode))


def config_error(config: object, what: str) -> InvalidConfigError:
    return InvalidConfigError(f"{what}; got {config}")


def check_costs(
    config: object, initial_capital: float, fee_bps: float, slippage_bps: float
) -> None:
    """The capital and costs every engine's config checks the same way."""
    if not (math.isfinite(initial_capital) and initial_capital > 0):
        raise config_error(config, "initial_capital must be > 0")
    if not 0.0 <= fee_bps < 1000.0:
        raise config_error(config, "fee_bps must be in [0, 1000)")
    if not 0.0 <= slippage_bps < 1000.0:
        raise config_error(config, "slippage_bps must be in [0, 1000)")


def checked_mode(config: object, bars_per_year: float | None, mode: str) -> PositionMode:
    """The year's bars checked, and the position mode read, as every engine's config does."""
    if bars_per_year is not None and not bars_per_year > 0:
        raise config_error(config, "bars_per_year must be > 0 or None")
    try:
        return PositionMode(mode)
    except ValueError:
        raise config_error(
            config, f"mode must be one of {[m.value for m in PositionMode]}"
        ) from None


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Metrics, trades, the equity curve (at each bar's close) and the side held in each bar."""

    config: EngineConfig
    metrics: Metrics
    trades: TradeLog
    equity: FloatArray
    side: Int8Array  # +1 long / -1 short / 0 flat during the bar (after the open's fills)
    open_time_ms: npt.NDArray[np.int64]


def as_target(bars: Bars, target: npt.ArrayLike, mode: PositionMode) -> Int8Array:
    raw = np.asarray(target)
    if raw.shape != (len(bars),):
        raise InvalidBarsError(f"target must have shape ({len(bars)},), got {raw.shape}")
    t = raw.astype(np.int8)
    if not np.array_equal(t, raw) or bool(np.any(np.abs(t) > 1)):
        raise InvalidBarsError("target positions must be -1, 0 or +1")
    return np.maximum(t, 0) if mode is PositionMode.LONG_ONLY else t


Costs = tuple[float, float, float, float, float]
"""A config's terms as the simulation takes them: fee and slippage rates, fraction of equity
per entry, stop-loss and take-profit fractions (0 when off)."""


def simulation_costs(config: EngineConfig) -> Costs:
    """``config``'s terms for ``simulation.advance`` (see ``Costs``)."""
    return (
        config.fee_bps * BPS,
        config.slippage_bps * BPS,
        config.fraction,
        config.stop_loss or 0.0,
        config.take_profit or 0.0,
    )


def run_backtest(
    bars: Bars, target: npt.ArrayLike, config: EngineConfig | None = None
) -> BacktestResult:
    """Simulate ``target`` (+1/0/-1 per bar; -1 means flat in long-only mode)."""
    cfg = config or EngineConfig()
    if len(bars) < 2:
        raise InvalidBarsError("need at least 2 bars")
    t = as_target(bars, target, cfg.mode)
    n = len(bars)
    floats, ints = new_state(cfg.initial_capital)
    equity = np.empty(n)
    side = np.empty(n, np.int8)
    ti, tf = trade_buffers(int(np.count_nonzero(t[1:] != t[:-1])) + 2)
    fee_rate, slippage, fraction, stop_loss, take_profit = simulation_costs(cfg)
    k = advance(
        bars.open, bars.high, bars.low, bars.close, t, 0, floats, ints,
        fee_rate, slippage, fraction, stop_loss, take_profit, equity, side, ti, tf,
    )  # fmt: skip
    k = finish(n - 1, bars.close[n - 1], floats, ints, slippage, fee_rate, equity, ti, tf, k)
    ti, tf = ti[:k], tf[:k]
    times = bars.open_time_ms
    entry_bar, exit_bar = ti[:, TI_ENTRY_BAR], ti[:, TI_EXIT_BAR]
    trades = TradeLog(
        entry_bar=entry_bar,
        exit_bar=exit_bar,
        entry_time_ms=times[entry_bar],
        exit_time_ms=times[exit_bar],
        direction=ti[:, TI_DIRECTION].astype(np.int8),
        size=tf[:, TF_QTY],
        entry_price=tf[:, TF_ENTRY_PX],
        exit_price=tf[:, TF_EXIT_PX],
        pnl=tf[:, TF_PNL],
        return_=trade_returns(tf),
        fees=tf[:, TF_FEES],
        exit_reason=ti[:, TI_REASON].astype(np.int8),
    )
    periods = cfg.bars_per_year or bars_per_year(times)
    metrics = compute_metrics(equity, trades, cfg.initial_capital, int(ints[S_EXPOSED]), periods)
    return BacktestResult(cfg, metrics, trades, equity, side, times)


def run_strategy(
    bars: Bars,
    strategy: str,
    params: Params | Mapping[str, object] | None = None,
    config: EngineConfig | None = None,
    indicators: Indicators | None = None,
) -> BacktestResult:
    """Validate params for the named strategy, compute its targets and backtest them."""
    spec = get_strategy(strategy)
    parsed = params if isinstance(params, Params) else spec.parse(params)
    return run_backtest(bars, spec.signal(bars, parsed, indicators), config)

"""Domain results -> finance.backtest.v1 messages: metrics, trades, a down-sampled equity curve."""

import itertools
import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from finance.backtest.v1 import backtest_pb2
from finplat.backtest.domain.engine import BacktestResult, EngineConfig, PositionMode
from finplat.backtest.domain.metrics import MS_PER_YEAR, Metrics
from finplat.backtest.domain.trades import TradeLog

DEFAULT_INITIAL_CASH = 10_000.0

# Proto Metrics field -> domain Metrics attribute, where the names differ.
PROTO_TO_DOMAIN_METRIC = {
    "volatility": "annual_volatility",
    "max_drawdown_duration": "max_drawdown_duration_bars",
    "trade_count": "n_trades",
    "average_trade": "avg_trade_return",
}
PROTO_METRICS = tuple(field.name for field in backtest_pb2.Metrics.DESCRIPTOR.fields)


def timestamp(ms: int) -> Timestamp:
    """A Timestamp from epoch milliseconds."""
    stamp = Timestamp()
    stamp.FromMilliseconds(int(ms))
    return stamp


def engine_config(config: backtest_pb2.BacktestConfig) -> EngineConfig:
    """The engine's config, proto zero values read as documented defaults (may raise)."""
    return EngineConfig(
        initial_capital=config.initial_cash or DEFAULT_INITIAL_CASH,
        fee_bps=config.fee_bps,
        slippage_bps=config.slippage_bps,
        mode=(
            PositionMode.LONG_SHORT
            if config.mode == backtest_pb2.POSITION_MODE_LONG_SHORT
            else PositionMode.LONG_ONLY
        ),
        fraction=config.position_fraction or 1.0,
        stop_loss=config.stop_loss or None,
        take_profit=config.take_profit or None,
    )


def config_proto(config: EngineConfig) -> backtest_pb2.BacktestConfig:
    """The config actually used, defaults filled in, as stored with a run."""
    return backtest_pb2.BacktestConfig(
        initial_cash=config.initial_capital,
        fee_bps=config.fee_bps,
        slippage_bps=config.slippage_bps,
        mode=(
            backtest_pb2.POSITION_MODE_LONG_SHORT
            if config.mode is PositionMode.LONG_SHORT
            else backtest_pb2.POSITION_MODE_LONG_ONLY
        ),
        position_fraction=config.fraction,
        stop_loss=config.stop_loss or 0.0,
        take_profit=config.take_profit or 0.0,
    )


def drawdown_duration_ms(metrics: Metrics) -> int:
    """The longest drawdown in milliseconds: its bars at the median bar spacing (0 unknown)."""
    bar_ms = MS_PER_YEAR / metrics.bars_per_year if metrics.bars_per_year > 0 else 0.0
    return round(metrics.max_drawdown_duration_bars * bar_ms) if math.isfinite(bar_ms) else 0


def metrics_proto(metrics: Metrics) -> backtest_pb2.Metrics:
    """Proto metrics; the drawdown duration goes from bars to time at the median bar spacing."""
    duration = Duration()
    duration.FromMilliseconds(drawdown_duration_ms(metrics))
    return backtest_pb2.Metrics(
        total_return=metrics.total_return,
        cagr=metrics.cagr,
        volatility=metrics.annual_volatility,
        sharpe=metrics.sharpe,
        sortino=metrics.sortino,
        calmar=metrics.calmar,
        max_drawdown=metrics.max_drawdown,
        max_drawdown_duration=duration,
        win_rate=metrics.win_rate,
        profit_factor=metrics.profit_factor,
        trade_count=metrics.n_trades,
        average_trade=metrics.avg_trade_return,
        exposure=metrics.exposure,
        final_equity=metrics.final_equity,
    )


def sweep_result_proto(params: Mapping[str, float], metrics: Metrics) -> backtest_pb2.SweepResult:
    """One combination of a sweep: its parameter values and metrics."""
    return backtest_pb2.SweepResult(
        parameters={k: float(v) for k, v in params.items()}, metrics=metrics_proto(metrics)
    )


def trades_proto(trades: TradeLog) -> list[backtest_pb2.Trade]:
    """Closed trades in entry order (the domain logs them in exit order)."""
    order = np.argsort(trades.entry_bar, kind="stable")
    return [
        backtest_pb2.Trade(
            side=backtest_pb2.SIDE_LONG if trades.direction[i] > 0 else backtest_pb2.SIDE_SHORT,
            entry_time=timestamp(int(trades.entry_time_ms[i])),
            exit_time=timestamp(int(trades.exit_time_ms[i])),
            entry_price=float(trades.entry_price[i]),
            exit_price=float(trades.exit_price[i]),
            size=float(trades.size[i]),
            pnl=float(trades.pnl[i]),
            return_fraction=float(trades.return_[i]),
            fees=float(trades.fees[i]),
        )
        for i in order
    ]


def drawdown(equity: npt.NDArray[np.float64], initial: float) -> npt.NDArray[np.float64]:
    """Drawdown from the running peak (the initial capital included), a positive fraction."""
    peak = np.maximum.accumulate(np.maximum(equity, initial))
    return np.asarray(1.0 - equity / peak, dtype=np.float64)


def sample_indices(values: npt.NDArray[np.float64], max_points: int) -> npt.NDArray[np.int64]:
    """At most `max_points` indices: per bucket its first point and its largest `values` point.

    Keeping each bucket's extreme keeps the deepest drawdown visible; the last point is kept.
    """
    n = values.shape[0]
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    buckets = max(1, (max_points - 1) // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = [int(n - 1)]
    for start, stop in itertools.pairwise(edges):
        if stop > start:
            keep.extend((int(start), int(start + np.argmax(values[start:stop]))))
    return np.unique(np.asarray(keep, dtype=np.int64))


def equity_curve_proto(
    equity: npt.NDArray[np.float64],
    open_time_ms: npt.NDArray[np.int64],
    initial: float,
    max_points: int,
) -> list[backtest_pb2.EquityPoint]:
    """The equity curve at each bar's close, down-sampled to at most `max_points`."""
    dd = drawdown(equity, initial)
    return [
        backtest_pb2.EquityPoint(
            time=timestamp(int(open_time_ms[i])), equity=float(equity[i]), drawdown=float(dd[i])
        )
        for i in sample_indices(dd, max_points)
    ]


def backtest_proto(
    run_id: str,
    strategy: str,
    parameters: Mapping[str, float],
    data: backtest_pb2.DataRange,
    result: BacktestResult,
    create_time_ms: int,
    max_points: int,
) -> backtest_pb2.Backtest:
    """A complete stored run."""
    return backtest_pb2.Backtest(
        id=run_id,
        strategy=strategy,
        parameters={name: float(value) for name, value in parameters.items()},
        data=data,
        config=config_proto(result.config),
        metrics=metrics_proto(result.metrics),
        trades=trades_proto(result.trades),
        equity_curve=equity_curve_proto(
            result.equity, result.open_time_ms, result.config.initial_capital, max_points
        ),
        create_time=timestamp(create_time_ms),
        bar_count=int(result.open_time_ms.shape[0]),
    )

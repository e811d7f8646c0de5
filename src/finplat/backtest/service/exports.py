"""A stored backtest's tables (trades, equity curve) and a walk-forward's (folds, stitched
equity curve) as Arrow tables, for ExportBacktest and ExportWalkForward (a sweep's table is
`finplat.client.tables.sweep_table`).

Columns are named as in the API's JSON (snake case here, as in the proto), times are UTC
timestamps in ms, the side is its enum name.
"""

from collections.abc import Sequence

import pyarrow as pa

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.client.tables import FileFormat, metric_columns, parameter_columns

_TIME = pa.timestamp("ms", tz="UTC")
_TRADE_NUMBERS = ("entry_price", "exit_price", "size", "pnl", "return_fraction", "fees")
FORMATS = {
    backtest_service_pb2.FILE_FORMAT_UNSPECIFIED: FileFormat.PARQUET,
    backtest_service_pb2.FILE_FORMAT_PARQUET: FileFormat.PARQUET,
    backtest_service_pb2.FILE_FORMAT_CSV: FileFormat.CSV,
}


def trades_table(backtest: backtest_pb2.Backtest) -> pa.Table:
    """One row per trade, in the order they were closed."""
    trades = backtest.trades
    return pa.table(
        {
            "side": pa.array([backtest_pb2.Side.Name(t.side) for t in trades], pa.string()),
            "entry_time": pa.array([t.entry_time.ToMilliseconds() for t in trades], _TIME),
            "exit_time": pa.array([t.exit_time.ToMilliseconds() for t in trades], _TIME),
            **{
                name: pa.array([getattr(t, name) for t in trades], pa.float64())
                for name in _TRADE_NUMBERS
            },
        }
    )


def equity_table(backtest: backtest_pb2.Backtest) -> pa.Table:
    """One row per stored point of the equity curve."""
    return _equity_points(backtest.equity_curve)


def _equity_points(points: Sequence[backtest_pb2.EquityPoint]) -> pa.Table:
    return pa.table(
        {
            "time": pa.array([p.time.ToMilliseconds() for p in points], _TIME),
            "equity": pa.array([p.equity for p in points], pa.float64()),
            "drawdown": pa.array([p.drawdown for p in points], pa.float64()),
        }
    )


TABLES = {
    backtest_service_pb2.RESULT_TABLE_TRADES: trades_table,
    backtest_service_pb2.RESULT_TABLE_EQUITY: equity_table,
}


def folds_table(walk_forward: backtest_service_pb2.WalkForward) -> pa.Table:
    """One row per fold: its windows, the chosen parameters, then its in-sample metrics
    (`in_sample.<metric>`) and out-of-sample metrics (`out_of_sample.<metric>`). A parameter
    named like another column is `parameter.<name>`."""
    folds = walk_forward.folds
    windows = ("in_sample_start_time", "in_sample_last_time", "out_of_sample_start_time",
               "out_of_sample_last_time")  # fmt: skip
    fixed = {
        "fold": pa.array([fold.index for fold in folds], pa.int32()),
        **{w: pa.array([getattr(f, w).ToMilliseconds() for f in folds], _TIME) for w in windows},
    }
    in_sample = metric_columns([f.in_sample_metrics for f in folds], "in_sample.")
    out_of_sample = metric_columns([f.out_of_sample_metrics for f in folds], "out_of_sample.")
    taken = {*fixed, *in_sample, *out_of_sample}
    parameters = parameter_columns([f.parameters for f in folds], taken)
    return pa.table({**fixed, **parameters, **in_sample, **out_of_sample})


def stitched_equity_table(walk_forward: backtest_service_pb2.WalkForward) -> pa.Table:
    """One row per stored point of the out-of-sample windows chained as one account."""
    return _equity_points(walk_forward.out_of_sample_equity)


WALK_FORWARD_TABLES = {
    backtest_service_pb2.WALK_FORWARD_TABLE_UNSPECIFIED: folds_table,
    backtest_service_pb2.WALK_FORWARD_TABLE_FOLDS: folds_table,
    backtest_service_pb2.WALK_FORWARD_TABLE_EQUITY: stitched_equity_table,
}

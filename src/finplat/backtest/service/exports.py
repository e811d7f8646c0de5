"""A stored backtest's tables (trades, equity curve) and a walk-forward's (folds, stitched
equity curve) as Arrow tables, for ExportBacktest and ExportWalkForward (a sweep's table is
`finplat.client.tables.sweep_table`).

Columns are named as in the API's JSON (snake case here, as in the proto), times are UTC
timestamps in ms, the side is its enum name.
"""

import pyarrow as pa

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.client.tables import TIME, FileFormat, equity_points_table, folds_table

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
            "entry_time": pa.array([t.entry_time.ToMilliseconds() for t in trades], TIME),
            "exit_time": pa.array([t.exit_time.ToMilliseconds() for t in trades], TIME),
            **{
                name: pa.array([getattr(t, name) for t in trades], pa.float64())
                for name in _TRADE_NUMBERS
            },
        }
    )


def equity_table(backtest: backtest_pb2.Backtest) -> pa.Table:
    """One row per stored point of the equity curve."""
    return equity_points_table(backtest.equity_curve)


TABLES = {
    backtest_service_pb2.RESULT_TABLE_TRADES: trades_table,
    backtest_service_pb2.RESULT_TABLE_EQUITY: equity_table,
}


def stitched_equity_table(walk_forward: backtest_service_pb2.WalkForward) -> pa.Table:
    """One row per stored point of the out-of-sample windows chained as one account."""
    return equity_points_table(walk_forward.out_of_sample_equity)


WALK_FORWARD_TABLES = {
    backtest_service_pb2.WALK_FORWARD_TABLE_UNSPECIFIED: folds_table,
    backtest_service_pb2.WALK_FORWARD_TABLE_FOLDS: folds_table,
    backtest_service_pb2.WALK_FORWARD_TABLE_EQUITY: stitched_equity_table,
}

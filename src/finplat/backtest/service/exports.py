"""A stored backtest's tables (trades, equity curve) and a sweep's results as Arrow tables, for
ExportBacktest and ExportSweep.

Columns are named as in the API's JSON (snake case here, as in the proto), times are UTC
timestamps in ms, the side is its enum name.
"""

import pyarrow as pa

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.client.tables import FileFormat

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
    points = backtest.equity_curve
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

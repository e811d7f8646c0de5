"""A stored backtest's tables (trades, equity curve) and a walk-forward's (folds, stitched
equity curve) as Arrow tables, for ExportBacktest and ExportWalkForward (a sweep's table is
`finplat.client.tables.sweep_table`); a sweep's whole table in pieces, for DownloadSweepTable.

Columns are named as in the API's JSON (snake case here, as in the proto), times are UTC
timestamps in ms, the side is its enum name.
"""

from collections.abc import Iterator, Mapping, Sequence

import pyarrow as pa

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.service.convert import (
    PROTO_METRICS,
    PROTO_TO_DOMAIN_METRIC,
    drawdown_duration_ms,
)
from finplat.client.tables import (
    TIME,
    FileFormat,
    equity_points_table,
    folds_table,
    parameter_columns,
)

# Rows of a sweep's whole table stored together: pieces large enough to compress well and to
# make Parquet row groups of, small enough to hold one at a time.
ROWS_PER_PIECE = 8192
# Bytes of a file per streamed message, well under gRPC's default 4 MiB receive limit.
BYTES_PER_MESSAGE = 1 << 20

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


class SweepRows:
    """A sweep's whole table cut into pieces of `ROWS_PER_PIECE` rows (the last one shorter),
    from its combinations and their metrics given in grid order, a chunk at a time: the
    columns of ExportSweep's table."""

    def __init__(self) -> None:
        self._params: list[Mapping[str, float]] = []
        self._metrics: list[Metrics] = []

    def add(
        self, params: Sequence[Mapping[str, float]], metrics: Sequence[Metrics]
    ) -> list[pa.Table]:
        """Take the next combinations; the pieces they complete."""
        self._params.extend(params)
        self._metrics.extend(metrics)
        pieces = []
        while len(self._params) >= ROWS_PER_PIECE:
            pieces.append(
                _rows_table(self._params[:ROWS_PER_PIECE], self._metrics[:ROWS_PER_PIECE])
            )
            del self._params[:ROWS_PER_PIECE], self._metrics[:ROWS_PER_PIECE]
        return pieces

    def rest(self) -> list[pa.Table]:
        """The last, shorter piece, if rows are left."""
        if not self._params:
            return []
        last = _rows_table(self._params, self._metrics)
        self._params, self._metrics = [], []
        return [last]


def _rows_table(params: Sequence[Mapping[str, float]], metrics: Sequence[Metrics]) -> pa.Table:
    # Column by column from the domain's metrics, as `metric_columns` reads the proto's (its
    # fields, the same values): a message per row would cost 28 us, this about 2.
    columns = {}
    for name in PROTO_METRICS:
        if name == "max_drawdown_duration":
            values = [drawdown_duration_ms(m) / 1000 for m in metrics]
        else:
            attribute = PROTO_TO_DOMAIN_METRIC.get(name, name)
            values = [getattr(m, attribute) for m in metrics]
        columns[name] = pa.array(values, pa.float64())
    return pa.table({**parameter_columns(params, columns), **columns})


def messages(data: bytes) -> Iterator[bytes]:
    """`data` cut into messages of at most `BYTES_PER_MESSAGE` bytes."""
    for start in range(0, len(data), BYTES_PER_MESSAGE):
        yield data[start : start + BYTES_PER_MESSAGE]

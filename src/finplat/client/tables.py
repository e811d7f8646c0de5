"""Arrow tables as the files people open them in: Parquet or CSV, as bytes with their type;
and the sweep table the service exports and the notebook client reads alike."""

from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2

TIME = pa.timestamp("ms", tz="UTC")
"""Times in tables: UTC milliseconds."""


class FileFormat(StrEnum):
    """A table file format; the value is its file suffix."""

    PARQUET = ".parquet"
    CSV = ".csv"

    @property
    def content_type(self) -> str:
        # Parquet's media type, registered with IANA in 2024.
        return "application/vnd.apache.parquet" if self is FileFormat.PARQUET else "text/csv"


def table_bytes(table: pa.Table, file_format: FileFormat) -> bytes:
    """`table` encoded as a whole file of `file_format`."""
    sink = pa.BufferOutputStream()
    if file_format is FileFormat.PARQUET:
        pq.write_table(table, sink)
    else:
        pa_csv.write_csv(table, sink)
    data: bytes = sink.getvalue().to_pybytes()
    return data


class TableFileWriter:
    """One Parquet or CSV file written a table at a time, its bytes handed out as they are
    written, so a file of a million rows never sits whole in memory.

    Tables are gathered into Parquet row groups of at least `row_group_rows` rows (small
    pieces would make a file slow to read); every table must have the first one's schema.
    """

    def __init__(self, file_format: FileFormat, row_group_rows: int = 65_536) -> None:
        self._format = file_format
        self._row_group_rows = row_group_rows
        self._sink = _Collected()
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None

    def add(self, table: pa.Table) -> bytes:
        """Take `table`; the file's bytes that are ready (b"" until a row group fills)."""
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self._row_group_rows:
            self._write_pending()
        return self._sink.take()

    def close(self) -> bytes:
        """The file's last bytes (for Parquet, its footer); an empty table makes a valid file."""
        if self._pending or self._writer is None:
            self._write_pending()
        assert self._writer is not None
        self._writer.close()
        return self._sink.take()

    def _write_pending(self) -> None:
        table = pa.concat_tables(self._pending) if self._pending else pa.table({})
        if self._writer is None:
            self._writer = (
                pq.ParquetWriter(self._sink, table.schema)
                if self._format is FileFormat.PARQUET
                else pa_csv.CSVWriter(self._sink, table.schema)
            )
        self._writer.write_table(table)
        self._pending, self._pending_rows = [], 0


class _Collected:
    """A write-only file that keeps what is written until it is taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: the bytes are kept until taken."""

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def metric_columns(
    metrics: Sequence[backtest_pb2.Metrics], prefix: str = ""
) -> dict[str, pa.Array]:
    """A column per Metrics field, named `<prefix><field>`; the drawdown's duration in seconds."""
    columns = {}
    for field in backtest_pb2.Metrics.DESCRIPTOR.fields:
        values = [getattr(m, field.name) for m in metrics]
        if field.name == "max_drawdown_duration":
            values = [value.ToTimedelta().total_seconds() for value in values]
        columns[f"{prefix}{field.name}"] = pa.array(values, pa.float64())
    return columns


def parameter_columns(
    parameters: Sequence[Mapping[str, float]], taken: Collection[str]
) -> dict[str, pa.Array]:
    """A column per parameter name, sorted; one named like a `taken` column is
    `parameter.<name>`."""
    names = sorted({name for values in parameters for name in values})
    return {
        (f"parameter.{name}" if name in taken else name): pa.array(
            [values.get(name) for values in parameters], pa.float64()
        )
        for name in names
    }


def sweep_table(sweep: backtest_pb2.Sweep) -> pa.Table:
    """One row per combination, in rank order: its parameters, then every metric (the
    drawdown's duration in seconds). A parameter named like a metric is `parameter.<name>`.

    The table ExportSweep serves, so a notebook's frame and a downloaded file have the same
    columns."""
    metrics = metric_columns([r.metrics for r in sweep.results])
    parameters = parameter_columns([r.parameters for r in sweep.results], metrics)
    return pa.table({**parameters, **metrics})


def equity_points_table(points: Sequence[backtest_pb2.EquityPoint]) -> pa.Table:
    """One row per point of an equity curve: time (UTC), equity, drawdown."""
    return pa.table(
        {
            "time": pa.array([p.time.ToMilliseconds() for p in points], TIME),
            "equity": pa.array([p.equity for p in points], pa.float64()),
            "drawdown": pa.array([p.drawdown for p in points], pa.float64()),
        }
    )


def folds_table(walk_forward: backtest_service_pb2.WalkForward) -> pa.Table:
    """One row per fold: its windows, the chosen parameters, then its in-sample metrics
    (`in_sample.<metric>`) and out-of-sample metrics (`out_of_sample.<metric>`). A parameter
    named like another column is `parameter.<name>`. The table ExportWalkForward serves."""
    folds = walk_forward.folds
    windows = ("in_sample_start_time", "in_sample_last_time", "out_of_sample_start_time",
               "out_of_sample_last_time")  # fmt: skip
    fixed = {
        "fold": pa.array([fold.index for fold in folds], pa.int32()),
        **{w: pa.array([getattr(f, w).ToMilliseconds() for f in folds], TIME) for w in windows},
    }
    in_sample = metric_columns([f.in_sample_metrics for f in folds], "in_sample.")
    out_of_sample = metric_columns([f.out_of_sample_metrics for f in folds], "out_of_sample.")
    taken = {*fixed, *in_sample, *out_of_sample}
    parameters = parameter_columns([f.parameters for f in folds], taken)
    return pa.table({**fixed, **parameters, **in_sample, **out_of_sample})

"""Arrow tables as the files people open them in: Parquet or CSV, as bytes with their type;
and the sweep table the service exports and the notebook client reads alike."""

from enum import StrEnum

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from finance.backtest.v1 import backtest_pb2


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


def sweep_table(sweep: backtest_pb2.Sweep) -> pa.Table:
    """One row per combination, in rank order: its parameters, then every metric (the
    drawdown's duration in seconds). A parameter named like a metric is `parameter.<name>`.

    The table ExportSweep serves, so a notebook's frame and a downloaded file have the same
    columns."""
    names = sorted({name for result in sweep.results for name in result.parameters})
    metrics = [field.name for field in backtest_pb2.Metrics.DESCRIPTOR.fields]
    columns = {
        (f"parameter.{name}" if name in metrics else name): pa.array(
            [r.parameters.get(name) for r in sweep.results], pa.float64()
        )
        for name in names
    }
    for metric in metrics:
        values = [getattr(r.metrics, metric) for r in sweep.results]
        if metric == "max_drawdown_duration":
            values = [value.ToTimedelta().total_seconds() for value in values]
        columns[metric] = pa.array(values, pa.float64())
    return pa.table(columns)

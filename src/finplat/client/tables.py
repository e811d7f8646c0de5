"""Arrow tables as the files people open them in: Parquet or CSV, as bytes with their type;
and the sweep table the service exports and the notebook client reads alike."""

from collections.abc import Collection, Mapping, Sequence
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

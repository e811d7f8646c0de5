"""Arrow tables as the files people open them in: Parquet or CSV, as bytes with their type."""

from enum import StrEnum

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq


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

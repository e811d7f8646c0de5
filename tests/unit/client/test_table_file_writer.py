"""`TableFileWriter`: a file written a table at a time, its bytes handed out as they are ready."""

import io

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from finplat.client.tables import FileFormat, TableFileWriter


def _piece(start: int, rows: int) -> pa.Table:
    return pa.table(
        {
            "fast": pa.array(range(start, start + rows), pa.float64()),
            "sharpe": pa.array([start / 7 + i * 1e-9 for i in range(rows)], pa.float64()),
        }
    )


def test_parquet_comes_out_row_group_by_row_group_before_the_file_ends() -> None:
    writer = TableFileWriter(FileFormat.PARQUET, row_group_rows=1000)
    handed = [writer.add(_piece(start, 300)) for start in range(0, 3000, 300)]
    tail = writer.close()
    data = b"".join(handed) + tail

    read = pq.ParquetFile(io.BytesIO(data))
    # Ten pieces of 300 rows: row groups close at 1200, 2400, and the rest at the end.
    assert [read.metadata.row_group(i).num_rows for i in range(3)] == [1200, 1200, 600]
    assert [len(b) > 0 for b in handed] == [False, False, False, True] * 2 + [False, False]
    assert read.read().equals(pa.concat_tables([_piece(s, 300) for s in range(0, 3000, 300)]))


def test_csv_has_one_header_and_every_row_in_order() -> None:
    writer = TableFileWriter(FileFormat.CSV, row_group_rows=250)
    data = b"".join(writer.add(_piece(start, 100)) for start in range(0, 1000, 100))
    data += writer.close()

    expected = pa.concat_tables([_piece(s, 100) for s in range(0, 1000, 100)])
    assert data.count(b'"fast","sharpe"') == 1
    # Whole numbers read back as integers: cast to compare values.
    assert pa_csv.read_csv(io.BytesIO(data)).cast(expected.schema).equals(expected)


def test_a_table_of_another_shape_is_refused() -> None:
    writer = TableFileWriter(FileFormat.PARQUET, row_group_rows=1)
    writer.add(_piece(0, 2))

    with pytest.raises(ValueError, match="schema"):
        writer.add(pa.table({"slow": pa.array([1.0])}))

"""Candles as a file a notebook or a spreadsheet opens: Parquet or CSV, the format by suffix.

Prices and volumes keep their exact decimal value (Arrow decimal128 with 8 places, Binance's
precision), times are UTC timestamps in ms. pandas reads the Parquet with
`pd.read_parquet(path)`; `.astype(float)` on a price column gives floats for computing.
"""

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from finance.market.v1 import market_pb2
from finplat.client.tables import FileFormat, table_bytes

_EXACT = pa.decimal128(38, 8)
_TIME = pa.timestamp("ms", tz="UTC")
_DECIMAL_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")
SUFFIXES = tuple(file_format.value for file_format in FileFormat)


def candle_table(candles: Sequence[market_pb2.Candle]) -> pa.Table:
    """One row per candle: open_time, close_time, the exact decimals, trade_count."""
    columns = {
        "open_time": pa.array([c.open_time for c in candles], _TIME),
        "close_time": pa.array([c.close_time for c in candles], _TIME),
        **{
            name: pa.array([Decimal(getattr(c, name) or "0") for c in candles], _EXACT)
            for name in _DECIMAL_FIELDS
        },
        "trade_count": pa.array([c.trade_count for c in candles], pa.int64()),
    }
    return pa.table(columns)


def write_candles(candles: Sequence[market_pb2.Candle], path: Path) -> None:
    """Write `candles` to `path`, Parquet or CSV by its suffix; ValueError for another."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path.name}: the file must end in {' or '.join(SUFFIXES)}")
    path.write_bytes(table_bytes(candle_table(candles), FileFormat(suffix)))

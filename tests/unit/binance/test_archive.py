"""Readers of the data files: both timestamp units, the OHLCV-only layout, trades, REST JSON."""

import gzip
import itertools
from datetime import date
from pathlib import Path

import pytest

from finance.market.v1 import market_pb2
from finplat.binance import archive
from finplat.binance.errors import DataError

KLINES = Path("klines/spot/BTCUSDT/1m")


def test_microsecond_klines_are_read_in_milliseconds(data_dir: Path) -> None:
    candles = archive.load_klines(data_dir / KLINES / "BTCUSDT-1m-2025-01-01.csv.gz", "BTCUSDT")

    # First row: 1735689600000000,93576.00000000,...,1735689659999999,768978.75522470,2631
    first = candles[0]
    assert (first.open_time, first.close_time) == (1735689600000, 1735689659999)
    assert (first.open, first.quote_volume, first.trade_count) == (
        "93576.00000000",
        "768978.75522470",
        2631,
    )
    assert len(candles) == 1440


def test_millisecond_klines_keep_their_values(data_dir: Path) -> None:
    candles = archive.load_klines(data_dir / KLINES / "BTCUSDT-1m-2017-08-17.csv.gz", "BTCUSDT")

    # Second row: a minute without trades.
    assert candles[1] == market_pb2.Candle(
        symbol="BTCUSDT", interval=market_pb2.INTERVAL_1M, open_time=1502942460000,
        close_time=1502942519999, open="4261.48000000", high="4261.48000000",
        low="4261.48000000", close="4261.48000000", volume="0.00000000", trade_count=0,
        closed=True, quote_volume="0.00000000",
    )  # fmt: skip


def test_files_spanning_both_units_join_without_gaps(data_dir: Path) -> None:
    files = [data_dir / KLINES / f"BTCUSDT-1m-{day}.csv.gz" for day in ("2025-01-01", "2024-12-31")]

    table = archive.load_kline_table("BTCUSDT", files)

    times = list(table.open_times)
    assert len(times) == 2880
    assert all(b - a == 60_000 for a, b in itertools.pairwise(times))


def test_ohlcv_only_file_is_reprinted_with_eight_decimals(data_dir: Path) -> None:
    table = archive.load_kline_table("ETHUSDT", archive.ohlcv_files(data_dir, "ETHUSDT"))

    first = table.candle(0)
    # Header then `2024-10-01 03:00:00,2619.73,2620.0,2618.25,2618.25,86.6352`.
    assert (first.open_time, first.open, first.high, first.volume) == (
        1727751600000,
        "2619.73000000",
        "2620.00000000",
        "86.63520000",
    )
    assert (first.quote_volume, first.trade_count) == ("", 0)
    assert len(table) == 50_000


def test_trades_are_read_lazily_with_their_side(data_dir: Path) -> None:
    trades = list(
        archive.iter_trades(data_dir / "trades/spot/BTCUSDT/BTCUSDT-trades-2017-08-17.csv.gz")
    )

    assert len(trades) == 3427
    assert trades[2] == archive.TradeRow(
        2, "4261.48000000", "0.07518300", "320.39085084", 1502942432322, False
    )
    assert [t.trade_id for t in trades] == list(range(3427))


def test_rest_json_is_read_as_closed_candles(data_dir: Path) -> None:
    candles = archive.load_rest_klines(
        data_dir / "klines_rest_json/30m/BTCUSDT/2024-10-07.json", "BTCUSDT", "30m"
    )

    assert len(candles) == 672
    assert (candles[0].open_time, candles[0].close, candles[0].trade_count) == (
        1728259200000,
        "62763.99000000",
        92304,
    )


def test_kline_files_are_selected_by_the_date_in_their_name(data_dir: Path) -> None:
    files = archive.kline_files(data_dir, "BTCUSDT", date(2024, 12, 30), date(2025, 1, 2))

    assert [f.name for f in files] == [
        f"BTCUSDT-1m-{d}.csv.gz" for d in ("2024-12-30", "2024-12-31", "2025-01-01", "2025-01-02")
    ]


def test_a_short_row_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress(b"1,2,3\n"))

    with pytest.raises(DataError, match="12 kline columns"):
        archive.load_klines(path, "BTCUSDT")


def test_a_truncated_gzip_is_a_data_error(data_dir: Path, tmp_path: Path) -> None:
    whole = (data_dir / KLINES / "BTCUSDT-1m-2025-01-01.csv.gz").read_bytes()
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])  # a download that stopped half way

    with pytest.raises(DataError, match="cannot read klines of"):
        archive.load_klines(path, "BTCUSDT")


def test_a_file_that_is_not_gzip_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv.gz"
    path.write_text("1000,1,2,0.5,1.5,10,1059,0,0,0,0,0\n")

    with pytest.raises(DataError, match="cannot read klines of"):
        archive.load_klines(path, "BTCUSDT")

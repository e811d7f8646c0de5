"""Kline loading: ms and µs archive files, validation of the Bars container."""

import gzip
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from finplat.backtest.adapters.kline_files import load_bars
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.errors import BacktestError, DataFileError, InvalidBarsError
from tests.unit.backtest.conftest import btc_1m


def test_ms_file_first_row_matches_the_csv(q4_bars: Bars) -> None:
    # Row 1 of BTCUSDT-1m-2024-11-01.csv: 1730419200000,70292.01,70311.18,70248.96,70311.17,60.6569
    assert len(q4_bars) == 3 * 1440
    assert q4_bars.open_time_ms[0] == 1_730_419_200_000
    assert (q4_bars.open[0], q4_bars.high[0], q4_bars.low[0]) == (70292.01, 70311.18, 70248.96)
    assert (q4_bars.close[0], q4_bars.volume[0]) == (70311.17, 60.6569)


def test_microsecond_files_are_converted_to_ms_and_join_seamlessly() -> None:
    # 2024-12-31 is in ms, 2025-01-01 in µs (1735689600000000): one minute apart once converted.
    bars = btc_1m(date(2024, 12, 31), date(2025, 1, 1))
    assert len(bars) == 2 * 1440
    assert bars.open_time_ms[1439] == 1_735_689_540_000
    assert bars.open_time_ms[1440] == 1_735_689_600_000
    assert bars.open[1440] == 93576.0
    assert np.all(np.diff(bars.open_time_ms) == 60_000)


def test_arrays_are_read_only(q4_bars: Bars) -> None:
    with pytest.raises(ValueError, match="read-only"):
        q4_bars.close[0] = 1.0


def test_plain_csv_and_missing_file(tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("1000,1,2,0.5,1.5,10,1059,0,0,0,0,0\n1060,1.5,2,1,1,5,1119,0,0,0,0,0\n")
    bars = load_bars([csv])
    assert bars.open_time_ms.tolist() == [1000, 1060]
    assert bars.close.tolist() == [1.5, 1.0]
    with pytest.raises(DataFileError):
        load_bars([tmp_path / "missing.csv.gz"])
    broken = tmp_path / "broken.csv.gz"
    with gzip.open(broken, "wt") as fh:
        fh.write("not,a,kline\n")
    with pytest.raises(DataFileError):
        load_bars([broken])


def test_invalid_bars_are_rejected() -> None:
    one = np.ones(3)
    with pytest.raises(InvalidBarsError, match="increasing"):
        Bars(np.array([3, 2, 1]), one, one, one, one, one)
    with pytest.raises(InvalidBarsError, match="rows"):
        Bars(np.array([1, 2, 3]), one, one, one, np.ones(2), one)
    with pytest.raises(BacktestError):
        Bars.concat([])


def test_shift_and_concat_tile_a_series(q4_bars: Bars) -> None:
    day = q4_bars.slice(0, 1440)
    tiled = Bars.concat([day, day.shift_time(86_400_000)])
    assert len(tiled) == 2880
    assert tiled.open_time_ms[1440] == 1_730_419_200_000 + 86_400_000
    assert np.array_equal(tiled.close[1440:], day.close)


def test_bars_do_not_touch_the_callers_arrays() -> None:
    close = np.array([1.0, 2.0])
    bars = Bars(np.array([0, 60_000]), close, close, close, close, close)
    assert close.flags.writeable
    assert not bars.close.flags.writeable

"""Bars from Binance's kline archive files, read by the platform's one archive reader."""

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.errors import DataFileError
from finplat.binance import archive
from finplat.binance.errors import DataError


def load_bars(paths: Iterable[Path]) -> Bars:
    """The klines of every file, in open-time order (files in any order, overlaps kept once).

    DataFileError when a file is missing, unreadable or holds no kline.
    """
    paths = list(paths)
    try:
        _, lines = archive.read_kline_lines(paths)
    except DataError as exc:
        raise DataFileError(str(exc)) from exc
    if not lines:
        raise DataFileError(f"no klines in {[str(p) for p in paths]}")
    # Canonical lines start open_time,open,high,low,close,volume; open times (< 2**53) are exact
    # in float64, so numpy's C parser reads all six columns in one pass.
    try:
        raw = np.loadtxt(lines, delimiter=",", usecols=range(6), dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataFileError(f"cannot parse klines of {[str(p) for p in paths]}: {exc}") from exc
    return Bars(raw[:, 0].astype(np.int64), raw[:, 1], raw[:, 2], raw[:, 3], raw[:, 4], raw[:, 5])

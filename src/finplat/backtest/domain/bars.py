"""OHLCV bar container and a loader for Binance archive kline CSVs (ms or µs timestamps)."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.errors import DataFileError, InvalidBarsError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Open times at or above this are microseconds: 1e14 ms would be the year 5138.
_MICROSECOND_THRESHOLD = 100_000_000_000_000
_PRICE_FIELDS = ("open", "high", "low", "close", "volume")


def _readonly_float(values: npt.ArrayLike) -> FloatArray:
    # A read-only *view*: no copy for float64 input, and the caller's own flags are untouched.
    arr = np.ascontiguousarray(values, dtype=np.float64).view()
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, slots=True)
class Bars:
    """Columnar OHLCV bars sorted by open time.

    Fields are read-only views of the given arrays (no copy): do not mutate the inputs.
    """

    open_time_ms: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        times = np.ascontiguousarray(self.open_time_ms, dtype=np.int64).view()
        times.flags.writeable = False
        object.__setattr__(self, "open_time_ms", times)
        for name in _PRICE_FIELDS:
            object.__setattr__(self, name, _readonly_float(getattr(self, name)))
        n = times.shape[0]
        for name in ("open_time_ms", *_PRICE_FIELDS):
            arr = getattr(self, name)
            if arr.ndim != 1 or arr.shape[0] != n:
                raise InvalidBarsError(f"{name} must be 1-D with {n} rows, got {arr.shape}")
        if n > 1 and not bool(np.all(np.diff(times) > 0)):
            raise InvalidBarsError("open_time_ms must be strictly increasing")

    def __len__(self) -> int:
        return int(self.open_time_ms.shape[0])

    def slice(self, start: int, stop: int) -> Bars:
        """Rows ``start:stop`` as new bars (views, no copy)."""
        return Bars(
            self.open_time_ms[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )

    @staticmethod
    def concat(parts: Sequence[Bars]) -> Bars:
        """Concatenate bars in the given order; times must keep increasing."""
        if not parts:
            raise InvalidBarsError("nothing to concatenate")
        return Bars(
            np.concatenate([p.open_time_ms for p in parts]),
            *(np.concatenate([getattr(p, f) for p in parts]) for f in _PRICE_FIELDS),
        )

    def shift_time(self, delta_ms: int) -> Bars:
        """Same prices with every open time moved by ``delta_ms``."""
        return Bars(
            self.open_time_ms + np.int64(delta_ms),
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
        )


def read_kline_csv(path: Path) -> Bars:
    """Read one headerless Binance kline CSV (optionally ``.gz``); µs open times become ms."""
    if not path.is_file():
        raise DataFileError(f"kline file not found: {path}")
    try:
        with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as fh:
            # Timestamps (< 2**53) are exact in float64, so one float parse covers all columns.
            raw = np.loadtxt(fh, delimiter=",", usecols=range(6), dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise DataFileError(f"cannot parse kline file {path}: {exc}") from exc
    times = raw[:, 0].astype(np.int64)
    times = np.where(times >= _MICROSECOND_THRESHOLD, times // 1000, times)
    return Bars(times, raw[:, 1], raw[:, 2], raw[:, 3], raw[:, 4], raw[:, 5])


def daily_kline_paths(
    data_dir: Path, symbol: str, interval: str, start: date, end: date
) -> list[Path]:
    """Paths of the daily archive files ``start..end`` (inclusive) in the Binance layout."""
    folder = data_dir / "klines" / "spot" / symbol / interval
    days = (end - start).days + 1
    return [
        folder / f"{symbol}-{interval}-{(start + timedelta(d)).isoformat()}.csv.gz"
        for d in range(days)
    ]


def load_klines(paths: Iterable[Path]) -> Bars:
    """Read and concatenate kline files in the given order."""
    return Bars.concat([read_kline_csv(p) for p in paths])

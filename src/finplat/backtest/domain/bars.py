"""OHLCV bars: the columnar container every backtest reads (file loading is an adapter's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain.errors import InvalidBarsError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

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

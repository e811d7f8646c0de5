"""Strategy building blocks: parameter schema, validated params, spec, indicator memo."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain import indicators as ind
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.errors import InvalidBarsError, InvalidParameterError
from finplat.backtest.domain.indicators.fixed_point import FixedPointSums
from finplat.backtest.domain.indicators.moving import sma_with_sums

FloatArray = npt.NDArray[np.float64]
Signal = npt.NDArray[np.int8]
Number = int | float


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One tunable parameter: its type, default and inclusive range."""

    name: str
    type: type[int] | type[float]
    default: Number
    min: Number
    max: Number
    description: str

    def coerce(self, owner: str, value: object) -> Number:
        """Check type and range; ints are accepted for float params, never bools."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise InvalidParameterError(owner, self.name, f"must be {self.type.__name__}")
        if self.type is int:
            if isinstance(value, float | np.floating) and not float(value).is_integer():
                raise InvalidParameterError(owner, self.name, f"must be an int, got {value}")
            number: Number = int(value)
        else:
            number = float(value)
            if not np.isfinite(number):
                raise InvalidParameterError(owner, self.name, f"must be finite, got {value}")
        if not self.min <= number <= self.max:
            raise InvalidParameterError(
                owner, self.name, f"must be in [{self.min}, {self.max}], got {number}"
            )
        return number


class StrategyParams:
    """Base of the frozen params dataclasses: validates every field against ``SCHEMA``."""

    __slots__ = ()
    STRATEGY: ClassVar[str]
    SCHEMA: ClassVar[tuple[ParamSpec, ...]]

    def __post_init__(self) -> None:
        for spec in self.SCHEMA:
            # Frozen dataclass: normalise (e.g. 3.0 -> 3) through object.__setattr__.
            object.__setattr__(
                self, spec.name, spec.coerce(self.STRATEGY, getattr(self, spec.name))
            )
        self.check()

    def check(self) -> None:
        """Cross-parameter constraints; raise ``InvalidParameterError``."""

    def as_dict(self) -> dict[str, Number]:
        return {spec.name: getattr(self, spec.name) for spec in self.SCHEMA}


@dataclass(frozen=True, slots=True)
class FastBelowSlowParams(StrategyParams):
    """Params of a crossover of a fast and a slow average: the fast one must be shorter.

    A frozen slots dataclass holding the two fields, so that a subclass (itself a frozen
    slots dataclass) adds only its ``STRATEGY``, its ``SCHEMA`` and any further fields.
    """

    fast: int
    slow: int

    def check(self) -> None:
        if self.fast >= self.slow:
            raise InvalidParameterError(self.STRATEGY, "fast", f"must be < slow ({self.slow})")


P = TypeVar("P", bound=StrategyParams)


class Indicators:
    """Memo of close-based indicators for one ``Bars``; shared across combos in a sweep.

    Results are cached by arguments, so e.g. each SMA length is computed once.
    Cached arrays are read-only.
    """

    def __init__(self, bars: Bars) -> None:
        self.bars = bars
        self._memo: dict[tuple[Any, ...], Any] = {}

    def _get(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            value = make()
            for arr in value if isinstance(value, tuple) else (value,):
                arr.flags.writeable = False
            self._memo[key] = value
        return self._memo[key]

    @cached_property
    def fixed_point_sums(self) -> FixedPointSums | None:
        """The closes' exact sums, converted once for every period; None unless every close
        is an exact 8-decimal price."""
        return FixedPointSums.of(self.bars.close)

    def sma(self, period: int) -> FloatArray:
        out: FloatArray = self._get(
            ("sma", period),
            lambda: sma_with_sums(self.bars.close, period, self.fixed_point_sums),
        )
        return out

    def mean_side(self, period_a: int, period_b: int) -> Signal:
        """``above_below`` of the mean close over the last ``period_a`` bars and that over the
        last ``period_b`` (a period of 1 is the close itself), decided exactly on 8-decimal
        closes.

        Those means are faithfully rounded (see ``fixed_point``), so the float comparison is
        already exact where it finds a side; only its ties are decided again, in integers.
        Otherwise (a close that is not such a price, or a sum beyond int64) the float
        comparison stands, rounding included.
        """
        side = above_below(self.sma(period_a), self.sma(period_b))
        sums = self.fixed_point_sums
        if sums is None or not (sums.fits(period_a) and sums.fits(period_b)):
            return side
        sums.decide_ties(side, period_a, period_b)
        return side

    def ema(self, period: int) -> FloatArray:
        out: FloatArray = self._get(("ema", period), lambda: ind.ema(self.bars.close, period))
        return out

    def rsi(self, period: int) -> FloatArray:
        out: FloatArray = self._get(("rsi", period), lambda: ind.rsi(self.bars.close, period))
        return out

    def macd(self, fast: int, slow: int, signal: int) -> tuple[FloatArray, FloatArray]:
        def make() -> tuple[FloatArray, FloatArray]:
            m = ind.macd(self.bars.close, fast, slow, signal)
            return m.line, m.signal

        out: tuple[FloatArray, FloatArray] = self._get(("macd", fast, slow, signal), make)
        return out

    def bollinger(self, period: int, nbdev: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        def make() -> tuple[FloatArray, FloatArray, FloatArray]:
            b = ind.bollinger_bands(self.bars.close, period, nbdev, nbdev)
            return b.upper, b.middle, b.lower

        out: tuple[FloatArray, FloatArray, FloatArray] = self._get(
            ("bollinger", period, nbdev), make
        )
        return out


SignalFn = Callable[[Bars, P, Indicators], Signal]


@dataclass(frozen=True, slots=True)
class StrategySpec(Generic[P]):
    """A registered strategy: schema, params type and the pure signal function."""

    name: str
    description: str
    params_type: type[P]
    signal_fn: SignalFn[P]

    @property
    def schema(self) -> tuple[ParamSpec, ...]:
        return self.params_type.SCHEMA

    def parse(self, raw: Mapping[str, object] | None = None) -> P:
        """Validated params from a mapping; missing names take the schema default."""
        raw = dict(raw or {})
        known = {spec.name for spec in self.schema}
        for key in raw:
            if key not in known:
                raise InvalidParameterError(self.name, key, f"unknown; expected {sorted(known)}")
        values = {spec.name: raw.get(spec.name, spec.default) for spec in self.schema}
        return self.params_type(**values)

    def signal(self, bars: Bars, params: P, indicators: Indicators | None = None) -> Signal:
        """Target position per bar (+1/0/-1), using bars up to that bar only."""
        if not isinstance(params, self.params_type):
            raise InvalidParameterError(
                self.name, "params", f"expected {self.params_type.__name__}"
            )
        if indicators is not None and indicators.bars is not bars:
            raise InvalidBarsError("indicators were built for different bars")
        return self.signal_fn(bars, params, indicators or Indicators(bars))


def hold_last(state: Signal) -> Signal:
    """Forward-fill non-zero states (0 = no opinion); 0 before the first opinion."""
    n = state.shape[0]
    # Index of the latest opinion so far; pointing at bar 0 before any opinion is harmless,
    # since then state[0] is itself 0.
    idx = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    idx[state == 0] = 0
    np.maximum.accumulate(idx, out=idx)
    out: Signal = state[idx]
    return out


def above_below(a: FloatArray, b: FloatArray) -> Signal:
    """+1 where a > b, -1 where a < b, 0 on ties or NaN (no opinion)."""
    return (a > b).astype(np.int8) - (a < b).astype(np.int8)

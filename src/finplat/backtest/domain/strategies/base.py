"""Strategy building blocks: parameter schema, validated params, spec, indicator memo."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain import indicators as ind
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.errors import (
    InvalidBarsError,
    InvalidParameterError,
    InvalidStrategyError,
    StrategyFailedError,
)
from finplat.backtest.domain.indicators.fixed_point import FixedPointSums
from finplat.backtest.domain.indicators.moving import sma_with_sums

if TYPE_CHECKING:  # the portfolio engine imports strategies: a type-only import back
    from finplat.backtest.domain.portfolio import Panel

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


class Params(Mapping[str, Number]):
    """Validated parameter values of one strategy, read as attributes (``p.fast``) or by name.

    One class for every strategy, so that a strategy is a value, not a class hierarchy, and
    params pickle by this module-level name when a sweep runs in other processes.
    """

    __slots__ = ("_strategy", "_values")
    _strategy: str
    _values: dict[str, Number]

    def __init__(self, strategy: str, values: Mapping[str, Number]) -> None:
        object.__setattr__(self, "_strategy", strategy)
        object.__setattr__(self, "_values", dict(values))

    @property
    def strategy(self) -> str:
        """Name of the strategy these values were validated for."""
        return self._strategy

    def __getattr__(self, name: str) -> Number:
        # Only reached for names that are not slots or methods: the parameters.
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{self._strategy} has no parameter {name!r}") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Params are immutable")

    def __getitem__(self, name: str) -> Number:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Params):
            return NotImplemented
        return self._strategy == other._strategy and self._values == other._values

    def __hash__(self) -> int:
        return hash((self._strategy, tuple(self._values.items())))

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Params({self._strategy}: {values})"

    def __reduce__(self) -> tuple[type[Params], tuple[str, dict[str, Number]]]:
        return (Params, (self._strategy, self._values))

    def as_dict(self) -> dict[str, Number]:
        return dict(self._values)


def fast_below_slow(params: Params) -> str | None:
    """The check of a crossover of a fast and a slow line: the fast one must be shorter."""
    if params.fast >= params.slow:
        return f"fast must be < slow ({params.slow})"
    return None


# Bytes of indicator series one memo keeps. Without a bound, a sweep of an EMA crossover over
# 200 periods of 1M bars would hold 1.6 GB; the least recently used series goes first, and
# computing it again gives the same array, so a bound costs time, never a result.
MEMO_BYTES = 512 * 2**20


def _arrays(value: Any) -> tuple[FloatArray, ...]:
    """The arrays of a memo entry: one series, or a tuple of them (MACD, Bollinger)."""
    return value if isinstance(value, tuple) else (value,)


class Indicators:
    """Memo of close-based indicators for one ``Bars``; shared across combos in a sweep.

    Results are cached by arguments, so e.g. each SMA length is computed once while it is
    used; at most ``budget`` bytes are kept (the least recently used series are let go).
    Cached arrays are read-only. Threads of a sweep share one memo.
    """

    def __init__(self, bars: Bars, budget: int = MEMO_BYTES) -> None:
        self.bars = bars
        self._budget = budget
        self._memo: dict[tuple[Any, ...], Any] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def _get(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        with self._lock:
            value = self._memo.pop(key, None)
            if value is not None:
                self._memo[key] = value  # now the most recently used
                return value
        value = make()  # outside the lock: threads compute different series at once
        for arr in _arrays(value):
            arr.flags.writeable = False
        with self._lock:
            if key not in self._memo:  # another thread may have made it meanwhile
                self._memo[key] = value
                self._bytes += sum(arr.nbytes for arr in _arrays(value))
            while self._bytes > self._budget and len(self._memo) > 1:
                oldest = self._memo.pop(next(iter(self._memo)))
                self._bytes -= sum(arr.nbytes for arr in _arrays(oldest))
            return self._memo.get(key, value)

    @property
    def kept_bytes(self) -> int:
        """Bytes of the series kept now."""
        return self._bytes

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


SignalFn = Callable[[Bars, Params, Indicators], npt.ArrayLike]
"""Bars (up to and including each bar), params and the indicator memo in; one target per bar
out: +1 long, 0 flat, -1 short, decided at the bar's close and filled at the next open."""
PortfolioFn = Callable[["Panel", Params], npt.ArrayLike]
"""Bars of several symbols and params in; per bar and symbol, the weight (fraction of the
portfolio's value, negative short) decided at the bar's close and filled at the next open."""
CheckFn = Callable[[Params], str | None]
"""A constraint across parameters: the reason the values do not fit together, or None."""


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A strategy: its name, parameter schema, optional cross-parameter check, and its pure
    functions. Built-in and user strategies alike are instances of this class.

    ``signal_fn`` trades one symbol; run on several, each symbol gets an equal share of the
    portfolio (its target / number of symbols). ``portfolio_fn`` decides the weights of all
    symbols together (a rotation, a pair); a strategy with only that one runs on portfolios.
    """

    name: str
    description: str
    schema: tuple[ParamSpec, ...]
    signal_fn: SignalFn | None
    check: CheckFn | None = None
    portfolio_fn: PortfolioFn | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise InvalidStrategyError(self.name or "?", "name must be a Python identifier")
        if self.signal_fn is None and self.portfolio_fn is None:
            raise InvalidStrategyError(self.name, "needs a signal_fn or a portfolio_fn")
        names = [p.name for p in self.schema]
        if len(set(names)) != len(names):
            raise InvalidStrategyError(self.name, f"parameter names repeat: {names}")
        for spec in self.schema:
            if not spec.min <= spec.default <= spec.max:
                raise InvalidStrategyError(
                    self.name, f"default of {spec.name!r} is outside [{spec.min}, {spec.max}]"
                )

    def parse(self, raw: Mapping[str, object] | None = None) -> Params:
        """Validated params from a mapping; missing names take the schema default."""
        raw = dict(raw or {})
        known = {spec.name for spec in self.schema}
        for key in raw:
            if key not in known:
                raise InvalidParameterError(self.name, key, f"unknown; expected {sorted(known)}")
        params = Params(
            self.name,
            {s.name: s.coerce(self.name, raw.get(s.name, s.default)) for s in self.schema},
        )
        reason = self.check(params) if self.check is not None else None
        if reason is not None:
            raise InvalidParameterError(self.name, None, reason)
        return params

    def signal(self, bars: Bars, params: Params, indicators: Indicators | None = None) -> Signal:
        """Target position per bar (+1/0/-1), using bars up to that bar only.

        Whatever the function returns is checked: a raise, a wrong shape, NaN or a value
        outside -1..+1 becomes a ``StrategyFailedError`` naming the strategy and the reason.
        """
        self._check_params(params)
        if self.signal_fn is None:
            raise StrategyFailedError(
                self.name, "is a portfolio strategy: it runs on several symbols (RunPortfolio)"
            )
        if indicators is not None and indicators.bars is not bars:
            raise InvalidBarsError("indicators were built for different bars")
        signal_fn = self.signal_fn
        raw = self._call(lambda: signal_fn(bars, params, indicators or Indicators(bars)))
        return _checked_targets(self.name, raw, len(bars))

    def weights(self, panel: Panel, params: Params) -> FloatArray:
        """Target weight per bar and symbol, (n_bars, n_symbols), checked as ``signal``'s
        targets are: the portfolio function's, else each symbol's target / n_symbols."""
        self._check_params(params)
        if self.portfolio_fn is None:
            targets = [self.signal(panel.bars(k), params) for k in range(panel.n_symbols)]
            return np.column_stack(targets) / panel.n_symbols
        portfolio_fn = self.portfolio_fn
        raw = self._call(lambda: portfolio_fn(panel, params))
        try:
            weights = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            reason = f"returned weights that are not numbers: {exc}"
            raise StrategyFailedError(self.name, reason) from exc
        expected = (len(panel), panel.n_symbols)
        if weights.shape != expected:
            raise StrategyFailedError(
                self.name, f"returned weights of shape {weights.shape}, expected {expected}"
            )
        if not bool(np.isfinite(weights).all()):
            bar, column = divmod(int(np.argmax(~np.isfinite(weights))), expected[1])
            raise StrategyFailedError(
                self.name,
                f"returned weight {weights[bar, column]} for {panel.symbols[column]} at bar {bar}",
            )
        return weights

    def _check_params(self, params: Params) -> None:
        if not isinstance(params, Params) or params.strategy != self.name:
            raise InvalidParameterError(self.name, "params", f"expected params of {self.name}")

    def _call(self, run: Callable[[], npt.ArrayLike]) -> npt.ArrayLike:
        try:
            return run()
        except Exception as exc:  # user code: any failure is the strategy's, reported by name
            raise StrategyFailedError(self.name, f"raised {type(exc).__name__}: {exc}") from exc


def _checked_targets(strategy: str, raw: npt.ArrayLike, n: int) -> Signal:
    """``raw`` as int8 targets of ``n`` bars, or ``StrategyFailedError`` saying what is wrong."""
    try:
        values = np.asarray(raw)
    except Exception as exc:  # an object numpy cannot read as an array
        raise StrategyFailedError(strategy, f"returned {type(raw).__name__}, not an array") from exc
    if values.shape != (n,):
        raise StrategyFailedError(strategy, f"returned shape {values.shape}, expected ({n},)")
    if values.dtype == np.int8:
        targets: Signal = values
    else:
        if values.dtype.kind not in "biuf":
            raise StrategyFailedError(strategy, f"returned dtype {values.dtype}, not numbers")
        if values.dtype.kind == "f" and not bool(np.isfinite(values).all()):
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise StrategyFailedError(strategy, f"returned {values[bad]} at bar {bad}")
        targets = values.astype(np.int8)
        outside = np.flatnonzero(targets != values)
        if outside.size:
            raise StrategyFailedError(
                strategy,
                f"returned {values[outside[0]]} at bar {int(outside[0])}; targets are -1, 0 or +1",
            )
    outside = np.flatnonzero(np.abs(targets) > 1)
    if outside.size:
        raise StrategyFailedError(
            strategy,
            f"returned {targets[outside[0]]} at bar {int(outside[0])}; targets are -1, 0 or +1",
        )
    return targets


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

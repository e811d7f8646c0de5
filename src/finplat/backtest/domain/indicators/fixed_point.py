"""Exact window sums and means of prices held as integers of 1e-8, Binance's precision.

Every price in the data is a decimal with at most 8 places, so in units of 1e-8 it is an
integer: window sums are exact in int64, and the comparison of two means (or of a close with a
mean) is decided exactly, where a float running sum lets rounding decide a tie (a close equal
to its mean, two equal means), and differently from one engine to another.

The means are also returned as floats, rounded *faithfully*: the float of a mean is a
non-decreasing function of the exact mean alone, whatever its window length, and a close's float
is that function of the close. So a strict float inequality between such values is the exact
answer, equal exact values give equal floats, and only equal floats need the exact decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from finplat.backtest.domain._jit import njit
from finplat.backtest.domain.indicators._common import FloatArray
from finplat.market.fixed import SCALE_DIGITS

IntArray = npt.NDArray[np.int64]
SignArray = npt.NDArray[np.int8]

SCALE = 10**SCALE_DIGITS
# float64 holds every integer below 2**53 (prices below ~9e7): the units, and the whole parts
# of the means, convert to float without rounding.
_EXACT_IN_FLOAT = 2.0**53
_INT64_LIMIT = 2**63


@njit
def _running_units(values: FloatArray, out: IntArray) -> float:
    """Fill ``out[i]`` with the sum of the first ``i`` values in units of 1e-8; return the
    largest |unit|, or -1 at the first value that is not an exact 8-decimal price.

    Exact means that the float is the one nearest to its 8-place decimal: rounding
    ``value * 1e8`` to an integer and dividing back gives ``value`` again. NaN and infinities
    fail that test; values of 2**53 units or more are refused as well. One compiled pass: the
    check and the sums cost about what one numpy operation does.
    """
    total = np.int64(0)
    largest = 0.0
    out[0] = 0
    for i in range(values.shape[0]):
        scaled = np.rint(values[i] * SCALE)
        if not abs(scaled) < _EXACT_IN_FLOAT or scaled / SCALE != values[i]:
            return -1.0
        largest = max(largest, abs(scaled))
        # int64 addition wraps modulo 2**64 on long series; see ``fits`` for why the
        # window sums stay exact.
        total += np.int64(scaled)
        out[i + 1] = total
    return largest


@njit
def _means(cumulative: IntArray, period: int, out: FloatArray) -> None:
    """``out[i]`` = the mean of the ``period`` units ending at bar ``i``, in price units."""
    for i in range(period - 1, out.shape[0]):
        total = cumulative[i + 1] - cumulative[i + 1 - period]
        # mean = whole + part / period with whole = floor(mean): the whole part converts
        # exactly, the part is one correctly rounded division, adding them rounds once, and
        # so does the scaling. Each step is non-decreasing and depends on the mean only, not
        # on ``period``: that is what makes the float faithful.
        whole = total // period
        part = total - whole * period
        out[i] = (whole + part / period) / SCALE


@dataclass(frozen=True, slots=True)
class FixedPointSums:
    """Running sums of one series of prices in units of 1e-8.

    ``cumulative[i]`` is the sum of the first ``i`` units, modulo 2**64.
    """

    cumulative: IntArray
    largest: int

    @staticmethod
    def of(values: FloatArray) -> FixedPointSums | None:
        """The sums of ``values``, or None unless every value is an exact 8-decimal price."""
        cumulative = np.empty(values.shape[0] + 1, dtype=np.int64)
        largest = _running_units(values, cumulative)
        return None if largest < 0 else FixedPointSums(cumulative, int(largest))

    def fits(self, period: int) -> bool:
        """Whether every ``period``-bar sum lies within int64 (largest x period < 2**63).

        Then a difference of the wrapped running sums, right modulo 2**64 and within int64,
        is the exact sum: the means and ties of such a period are exact.
        """
        return self.largest * period < _INT64_LIMIT

    def decide_ties(self, side: SignArray, period_a: int, period_b: int) -> None:
        """Decide again, exactly and in place, each 0 of ``side`` (the float comparison of the
        ``period_a``- and ``period_b``-bar means, +1 / -1 / 0) once both means exist; both
        periods must ``fit``."""
        _decide_ties(self.cumulative, period_a, period_b, side)

    def means(self, period: int) -> FloatArray | None:
        """The ``period``-bar means in price units, faithfully rounded; NaN before bar
        ``period - 1``. None unless ``period`` fits."""
        if not self.fits(period):
            return None
        out = np.empty(self.cumulative.shape[0] - 1)
        out[: period - 1] = np.nan
        _means(self.cumulative, period, out)
        return out


@njit
def compare_means(sum_a: int, period_a: int, sum_b: int, period_b: int) -> int:
    """The sign of ``sum_a / period_a - sum_b / period_b``, exactly (sums of fitting periods).

    The cross products sum_a * period_b can overflow int64, so the floor parts decide first;
    only when they are equal do the remainders, whose cross products stay below
    period_a * period_b.
    """
    whole_a = sum_a // period_a
    whole_b = sum_b // period_b
    if whole_a != whole_b:
        return 1 if whole_a > whole_b else -1
    part = (sum_a - whole_a * period_a) * period_b - (sum_b - whole_b * period_b) * period_a
    return (part > 0) - (part < 0)


@njit
def _decide_ties(cumulative: IntArray, period_a: int, period_b: int, side: SignArray) -> None:
    # Compiled, one pass: finding the ties costs about a numpy comparison, and a flat market
    # makes every bar one.
    for i in range(max(period_a, period_b) - 1, side.shape[0]):
        if side[i] == 0:
            sum_a = cumulative[i + 1] - cumulative[i + 1 - period_a]
            sum_b = cumulative[i + 1] - cumulative[i + 1 - period_b]
            side[i] = compare_means(sum_a, period_a, sum_b, period_b)

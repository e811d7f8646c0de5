"""Exact window sums and faithful means of 8-decimal prices, values worked out by hand."""

from fractions import Fraction

import numpy as np
import pytest

from finplat.backtest.domain import indicators as ind
from finplat.backtest.domain.indicators.fixed_point import FixedPointSums
from finplat.backtest.domain.strategies import get_strategy
from tests.unit.backtest.helpers import make_bars


def sums_of(values: list[float]) -> FixedPointSums:
    sums = FixedPointSums.of(np.array(values))
    assert sums is not None
    return sums


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 0.1 + 0.2],  # 0.30000000000000004 is no 8-decimal price
        [1.0, 1e-9],
        [1.0, np.nan],
        [1.0, np.inf],
        [90_071_992.54740992],  # 2**53 units
    ],
)
def test_values_that_are_no_exact_8_decimal_price_have_no_sums(values: list[float]) -> None:
    assert FixedPointSums.of(np.array(values)) is None


def test_sums_are_exact_where_the_running_sum_wraps_past_int64() -> None:
    # 2,000 prices of 90,000,000 (9e15 units): the running sum passes 2**63 at bar ~1,025.
    sums = sums_of([90_000_000.0] * 2000)
    assert sums.largest == 9 * 10**15
    means = sums.means(3)
    assert means is not None
    assert means[2] == means[1999] == 90_000_000.0


def test_a_window_whose_sum_could_leave_int64_has_no_means() -> None:
    # 9e15 units x 1,025 bars > 2**63 (9.22e18) > 9e15 x 1,024.
    sums = sums_of([90_000_000.0] * 2000)
    assert sums.fits(1024)
    assert not sums.fits(1025)
    assert sums.means(1025) is None
    # The SMA then falls back to the float running sum.
    assert ind.sma(np.full(2000, 90_000_000.0), 1025)[1999] == pytest.approx(9e7, rel=1e-12)


def test_a_mean_of_whole_units_is_the_float_of_its_decimal() -> None:
    # (0.1 + 0.2) / 2 in floats is 0.15000000000000002; the exact mean 0.15 has its own float.
    assert (0.1 + 0.2) / 2 != 0.15
    got = ind.sma([0.1, 0.2, 0.4], 2)
    assert np.isnan(got[0])
    assert got[1:].tolist() == [0.15, 0.3]


def test_equal_means_over_different_windows_are_equal_floats() -> None:
    # In units of 1e-8: 0 0 1 0 0 1 2. Means of other windows over other lengths give the same
    # float when they are the same rational, so comparing them in floats finds the tie.
    x = [0.0, 0.0, 0.00000001, 0.0, 0.0, 0.00000001, 0.00000002]
    three, six = ind.sma(x, 3), ind.sma(x, 6)
    assert three[2] == six[5]  # 1/3 and 2/6 of a unit
    assert three[5] == six[5]  # 1/3 both
    assert three[4] < six[6] < three[6]  # 1/3 < 4/6 < 3/3: the order survives rounding
    assert three[6] == 0.00000001


@pytest.mark.parametrize(
    ("sum_a", "period_a", "sum_b", "period_b", "expected"),
    [
        # Means of 1e13 units + 1e-4 each over 10,000 and 50,000 bars: the cross products
        # (5e21) would overflow int64.
        (10**17 + 1, 10_000, 5 * 10**17 + 5, 50_000, 0),
        (10**17 + 2, 10_000, 5 * 10**17 + 5, 50_000, 1),
        (10**17 + 1, 10_000, 5 * 10**17 + 6, 50_000, -1),
        # Different whole parts decide alone: 7 > 6.999...
        (7, 1, 34_999, 5_000, 1),
        # Negative sums floor towards minus infinity: -1/2 < -1/3.
        (-1, 2, -1, 3, -1),
        (-2, 6, -1, 3, 0),
    ],
)
def test_ties_are_decided_exactly(
    sum_a: int, period_a: int, sum_b: int, period_b: int, expected: int
) -> None:
    difference = Fraction(sum_a, period_a) - Fraction(sum_b, period_b)
    assert (difference > 0) - (difference < 0) == expected
    # Running sums by hand whose windows ending at the last bar have those sums: the longer
    # window starts at bar 0, the shorter one where the difference of the sums begins.
    (long_sum, long_period), (short_sum, short_period) = sorted(
        [(sum_a, period_a), (sum_b, period_b)], key=lambda pair: -pair[1]
    )
    cumulative = np.zeros(long_period + 1, dtype=np.int64)
    cumulative[long_period - short_period] = long_sum - short_sum
    cumulative[long_period] = long_sum
    side = np.zeros(long_period, dtype=np.int8)
    FixedPointSums(cumulative, 0).decide_ties(side, period_a, period_b)
    assert side[-1] == expected


def test_sma_crossover_on_exact_ties_by_hand() -> None:
    # SMA(2) vs SMA(4) of 0.1, 0.2, 0.2, 0.1, 0.1, 0.2: at bar 3 both are 0.15 (tie: flat,
    # nothing held yet), at bar 4 0.1 < 0.15 (short), at bar 5 0.15 = 0.15 (tie: still short).
    # In floats 0.1 + 0.2 is no 0.3, so a float mean decides these ties by its rounding.
    bars = make_bars([0.1, 0.2, 0.2, 0.1, 0.1, 0.2])
    spec = get_strategy("sma_crossover")
    signal = spec.signal(bars, spec.parse({"fast": 2, "slow": 4}))
    assert signal.tolist() == [0, 0, 0, 0, -1, -1]


def test_means_closer_than_a_float_apart_are_decided_exactly() -> None:
    # 2,000 closes of 100,000, one of them 0.00000001 higher: the 2,000-bar mean is 1/2,000 of
    # a unit (5e-12) above the last close, less than half a float step at 1e5 (1.5e-11), so
    # the float mean equals the close; the exact means put the close below: short.
    closes = [100_000.0] * 2000
    closes[5] = 100_000.00000001
    # In units: 2,000 x 10**13 + 1 over 2,000 bars.
    assert Fraction(2000 * 10**13 + 1, 2000) - 10**13 == Fraction(1, 2000)
    assert ind.sma(closes, 2000)[-1] == closes[-1]

    spec = get_strategy("sma_crossover")
    signal = spec.signal(make_bars(closes), spec.parse({"fast": 1, "slow": 2000}))
    assert signal[-1] == -1

"""Ties on real bars decided exactly: two equal SMAs, and a close equal to its SMA.

BTCUSDT 1m closes have two decimals, so a 3-bar and a 6-bar mean, or a close and its 6-bar
mean, are sometimes exactly equal. The expected decisions come from the closes as written in
the files, read as decimals into Python integers of 1e-8: never from the code under test.
"""

from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.strategies import get_strategy
from finplat.binance import archive
from tests.paths import market_data_dir
from tests.unit.backtest.conftest import btc_1m

OCTOBER = (date(2024, 10, 1), date(2024, 10, 31))


def minute(text: str) -> int:
    """Open time in ms of the UTC minute ``"YYYY-MM-DD HH:MM"``."""
    moment = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@pytest.fixture(scope="module")
def bars() -> Bars:
    """44,640 bars: BTCUSDT 1m, October 2024."""
    return btc_1m(*OCTOBER)


@pytest.fixture(scope="module")
def units() -> list[int]:
    """Each October close, as written in the files, in integer units of 1e-8."""
    paths = archive.daily_kline_paths(market_data_dir(), "BTCUSDT", "1m", *OCTOBER)
    _, lines = archive.read_kline_lines(paths)
    scaled = [Decimal(line.split(",")[4]).scaleb(8) for line in lines]
    assert all(value == value.to_integral_value() for value in scaled)
    return [int(value) for value in scaled]


def window(units: list[int], end: int, length: int) -> int:
    return sum(units[end - length + 1 : end + 1])


def sign(value: int) -> int:
    return (value > 0) - (value < 0)


@pytest.mark.parametrize(("fast", "slow", "tie_count"), [(2, 6, 17), (3, 6, 26)])
def test_sma_ties_keep_the_previous_side(
    bars: Bars, units: list[int], fast: int, slow: int, tie_count: int
) -> None:
    # SMA(fast) vs SMA(slow) compares sum_fast / fast with sum_slow / slow, i.e.
    # sum_fast * slow with sum_slow * fast, in integers.
    sides = [0] * (slow - 1) + [
        sign(window(units, i, fast) * slow - window(units, i, slow) * fast)
        for i in range(slow - 1, len(units))
    ]
    expected, held = [], 0
    for side in sides:
        held = side or held
        expected.append(held)
    ties = [i for i, side in enumerate(sides) if i >= slow - 1 and side == 0]
    assert len(ties) == tie_count  # real ties in a month of minutes, some in flat windows

    spec = get_strategy("sma_crossover")
    signal = spec.signal(bars, spec.parse({"fast": fast, "slow": slow}))

    assert signal.tolist() == expected
    assert all(signal[i] == signal[i - 1] for i in ties)


@pytest.mark.parametrize(
    ("time", "closes", "held"),
    [
        # sum3 = 188,039.72 and sum6 = 376,079.44: both means are 62,679.906666...
        (
            "2024-10-12 07:01",
            ["62679.91", "62679.91", "62679.90", "62679.91", "62679.91", "62679.90"],
            1,
        ),
        # sum3 = 205,268.87 and sum6 = 410,537.74: both means are 68,422.956666...
        (
            "2024-10-20 12:15",
            ["68422.96", "68422.95", "68422.96", "68422.96", "68422.96", "68422.95"],
            1,
        ),
    ],
)
def test_a_float_mean_turns_these_ties_into_a_reversal(
    bars: Bars, units: list[int], time: str, closes: list[str], held: int
) -> None:
    i = int(np.flatnonzero(bars.open_time_ms == minute(time))[0])
    assert units[i - 5 : i + 1] == [int(Decimal(c).scaleb(8)) for c in closes]
    assert 2 * window(units, i, 3) == window(units, i, 6)

    spec = get_strategy("sma_crossover")
    signal = spec.signal(bars, spec.parse({"fast": 3, "slow": 6}))
    close = bars.close

    # The tie holds the long side...
    assert signal[i - 1] == signal[i] == held
    # ...where numpy's float means put SMA(3) below SMA(6), and would reverse to short.
    assert np.mean(close[i - 2 : i + 1]) < np.mean(close[i - 5 : i + 1])


def test_a_close_on_its_6_bar_mean_exits_the_bollinger_position(
    bars: Bars, units: list[int]
) -> None:
    # close * 6 == sum6: the close is on the middle band, which exits a long (close >= middle)
    # and a short (close <= middle) alike; it is inside any band, so nothing enters: flat.
    ties = [i for i in range(5, 44640) if 6 * units[i] == window(units, i, 6)]
    spec = get_strategy("bollinger_mean_reversion")
    signal = spec.signal(bars, spec.parse({"period": 6, "nbdev": 2.0}))

    assert [bars.open_time_ms[i] for i in ties] == [
        minute(t)
        for t in (
            "2024-10-12 19:54",
            "2024-10-20 06:42",
            "2024-10-20 06:43",
            "2024-10-27 10:05",
            "2024-10-27 11:59",
        )
    ]
    assert [int(signal[i]) for i in ties] == [0] * len(ties)
    # Some of those ties end a position, so the exit is a real decision.
    assert any(signal[i - 1] != 0 for i in ties)


def test_numpy_puts_a_close_off_its_equal_6_bar_mean(bars: Bars, units: list[int]) -> None:
    # 2024-10-27 10:05: 67,149.44 + 67,149.45 + 67,149.44 + 67,132.54 + 67,145.23 + 67,145.22
    # = 402,871.32 = 6 x 67,145.22, the close; numpy's mean is one ulp below it.
    i = int(np.flatnonzero(bars.open_time_ms == minute("2024-10-27 10:05"))[0])
    assert window(units, i, 6) == 6 * units[i] == 6 * 6_714_522_000_000

    close = bars.close
    assert np.mean(close[i - 5 : i + 1]) < close[i]
    spec = get_strategy("bollinger_mean_reversion")
    signal = spec.signal(bars, spec.parse({"period": 6, "nbdev": 2.0}))
    assert signal[i] == 0


def test_a_flat_window_enters_nothing(bars: Bars, units: list[int]) -> None:
    # 2024-10-20 06:42: six closes of 68,212.01, so the bands have zero width and equal the
    # close. A float running sum put the mean at 68,212.00999999..., below the close, which is
    # then "above the upper band": a short entry on a flat market.
    i = int(np.flatnonzero(bars.open_time_ms == minute("2024-10-20 06:42"))[0])
    assert units[i - 5 : i + 1] == [6_821_201_000_000] * 6

    spec = get_strategy("bollinger_mean_reversion")
    signal = spec.signal(bars, spec.parse({"period": 6, "nbdev": 2.0}))
    assert signal[i] == 0
    running = np.cumsum(bars.close)
    assert (running[i] - running[i - 6]) / 6 < bars.close[i]

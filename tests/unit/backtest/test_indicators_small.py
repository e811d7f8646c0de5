"""Hand-computed indicator values (VWAP has no TA-Lib counterpart) and argument checks."""

import math

import numpy as np
import pytest

from finplat.backtest.domain import indicators as ind
from finplat.backtest.domain.errors import InvalidParameterError

DAY = 86_400_000
MINUTE = 60_000


def test_vwap_resets_at_utc_midnight() -> None:
    # Bars at 23:58, 23:59 on day 0 and 00:00, 00:01 on day 1.
    times = np.array([DAY - 2 * MINUTE, DAY - MINUTE, DAY, DAY + MINUTE])
    high = np.array([12.0, 15.0, 30.0, 33.0])
    low = np.array([9.0, 12.0, 27.0, 30.0])
    close = np.array([9.0, 12.0, 30.0, 27.0])
    volume = np.array([2.0, 1.0, 4.0, 4.0])
    # Typical prices: (12+9+9)/3=10, (15+12+12)/3=13, (30+27+30)/3=29, (33+30+27)/3=30.
    expected = [
        10.0,
        (10 * 2 + 13 * 1) / 3,  # 11
        29.0,  # new session
        (29 * 4 + 30 * 4) / 8,  # 29.5
    ]
    out = ind.vwap(times, high, low, close, volume)
    np.testing.assert_allclose(out, expected, rtol=1e-15)


def test_vwap_without_reset_and_zero_volume() -> None:
    times = np.array([DAY - MINUTE, DAY, DAY + MINUTE])
    price = np.array([10.0, 20.0, 40.0])
    volume = np.array([0.0, 1.0, 3.0])
    out = ind.vwap(times, price, price, price, volume, session_ms=None)
    # No volume yet -> undefined; then (20*1)/1 and (20*1 + 40*3)/4 = 35.
    assert math.isnan(out[0])
    np.testing.assert_allclose(out[1:], [20.0, 35.0], rtol=1e-15)
    with pytest.raises(InvalidParameterError):
        ind.vwap(times, price, price, price, volume, session_ms=0)


def test_small_moving_averages_by_hand() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(ind.sma(x, 3), [np.nan, np.nan, 2.0, 3.0, 4.0])
    # WMA(3): (1*1 + 2*2 + 3*3) / 6 = 14/6, then (2 + 6 + 12)/6, (3 + 8 + 15)/6.
    np.testing.assert_allclose(ind.wma(x, 3), [np.nan, np.nan, 14 / 6, 20 / 6, 26 / 6])
    # EMA(3): seed = SMA = 2 at index 2, alpha 0.5: 2 + 0.5*(4-2) = 3, 3 + 0.5*(5-3) = 4.
    np.testing.assert_allclose(ind.ema(x, 3), [np.nan, np.nan, 2.0, 3.0, 4.0])


def test_rsi_by_hand() -> None:
    x = np.array([10.0, 11.0, 10.0, 12.0, 12.0])
    # Changes +1, -1, +2, 0. Period 2: seed gains (1+0)/2, losses (0+1)/2 -> RSI 50 at index 2.
    # Index 3: gain (0.5*1 + 2)/2 = 1.25, loss (0.5*1 + 0)/2 = 0.25 -> 100*1.25/1.5.
    # Index 4: gain 1.25/2 = 0.625, loss 0.125 -> 100*0.625/0.75.
    out = ind.rsi(x, 2)
    np.testing.assert_allclose(out, [np.nan, np.nan, 50.0, 100 * 1.25 / 1.5, 100 * 0.625 / 0.75])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_periods_are_domain_errors(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="period"):
        ind.sma(np.ones(10), bad)  # type: ignore[arg-type]

"""The look-ahead check: cut points, cheating strategies caught, the built-ins clean."""

from datetime import date

import numpy as np
import pytest

from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.lookahead import (
    Difference,
    LookaheadReport,
    check_lookahead,
    cut_points,
)
from finplat.backtest.domain.strategies import BUILT_IN, REGISTRY, Signal, get_strategy
from tests.unit.backtest.conftest import btc_1m
from tests.unit.backtest.helpers import MINUTE_MS, make_bars

# Targets by hand below: next-bar moves +1 -1 0 +1 -1, previous-bar moves . +1 -1 0 +1 -1.
CLOSES = [10.0, 11.0, 9.0, 9.0, 12.0, 8.0]
NOV_1_MS = 1_730_419_200_000  # 2024-11-01 00:00 UTC


def peek_next_close(bars: Bars) -> Signal:
    """Cheats: long when the next bar closes higher; flat on the last bar, which has none."""
    return np.append(np.sign(np.diff(bars.close)), 0).astype(np.int8)


def follow_last_move(bars: Bars) -> Signal:
    """Honest: the side of the latest close-to-close move; flat on the first bar."""
    return np.append(0, np.sign(np.diff(bars.close))).astype(np.int8)


def below_final_close(bars: Bars) -> Signal:
    """Cheats: long when the close is below the data's final close (e.g. a whole-series level)."""
    targets: Signal = np.sign(bars.close[-1] - bars.close).astype(np.int8)
    return targets


def flat_on_last_bar(bars: Bars) -> Signal:
    """Cheats subtly: honest except flat on the data's last bar, as if it knew the data ends."""
    targets = follow_last_move(bars)
    targets[-1] = 0
    return targets


def sma_flat_on_last_bar(bars: Bars) -> Signal:
    """The same subtle cheat on a built-in strategy."""
    spec = get_strategy("sma_crossover")
    targets = spec.signal(bars, spec.parse()).copy()
    targets[-1] = 0
    return targets


@pytest.fixture(scope="module")
def day() -> Bars:
    """1,440 bars of BTCUSDT 1m, 2024-11-01."""
    return btc_1m(date(2024, 11, 1), date(2024, 11, 1))


def test_cut_points_end_at_every_nth_bar_and_never_at_the_last() -> None:
    assert cut_points(10, 3, 0, seed=0).tolist() == [1, 4, 7]
    assert cut_points(5, 1, 0, seed=0).tolist() == [1, 2, 3, 4]
    assert cut_points(1, 1, 5, seed=0).tolist() == []


def test_random_cut_points_add_proper_prefixes_repeatably() -> None:
    lengths = cut_points(1000, 100, 50, seed=7)

    assert set(range(1, 1000, 100)) <= set(lengths.tolist())
    assert 10 < len(lengths) <= 60
    assert lengths.tolist() == sorted(set(lengths.tolist()))
    assert lengths.min() >= 1
    assert lengths.max() <= 999
    assert lengths.tolist() == cut_points(1000, 100, 50, seed=7).tolist()
    assert lengths.tolist() != cut_points(1000, 100, 50, seed=8).tolist()


def test_cut_points_refuse_a_step_below_one() -> None:
    with pytest.raises(ValueError, match="every must be >= 1"):
        cut_points(10, 0, 0, seed=0)


def test_an_honest_strategy_is_clean() -> None:
    report = check_lookahead(make_bars(CLOSES), follow_last_move, np.arange(1, 6))

    assert report == LookaheadReport(6, 5, 0, 0, ())
    assert report.clean


def test_reading_the_next_close_is_caught_at_the_prefix_ends() -> None:
    # Prefixes of 1, 3 and 5 bars end at bars 0, 2 and 4, where the full run's targets are
    # +1, 0 and -1 and every prefix's is 0 (no next bar): bar 2's tie hides the cheat.
    report = check_lookahead(make_bars(CLOSES), peek_next_close, cut_points(6, 2, 0, seed=0))

    assert report == LookaheadReport(
        bar_count=6,
        prefixes_checked=3,
        differing_prefixes=2,
        differing_bars=2,
        first=(Difference(0, 0, 1, 0, 0), Difference(4, 4 * MINUTE_MS, -1, 0, 4)),
    )
    assert not report.clean


def test_reading_the_final_close_is_caught_on_earlier_bars_too() -> None:
    # Full run, final close 8: -1 -1 -1 -1 -1 0. The 2-bar prefix (final close 11) gives +1 0,
    # the 5-bar one (final close 12) +1 +1 +1 +1 0. Each bar is reported from the shorter
    # prefix that changed it, though the lengths come longest first.
    report = check_lookahead(make_bars(CLOSES), below_final_close, np.array([5, 2]), limit=3)

    assert report == LookaheadReport(
        bar_count=6,
        prefixes_checked=2,
        differing_prefixes=2,
        differing_bars=5,
        first=(
            Difference(0, 0, -1, 1, 1),
            Difference(1, MINUTE_MS, -1, 0, 1),
            Difference(2, 2 * MINUTE_MS, -1, 1, 4),
        ),
    )


def test_a_cheat_on_the_last_bar_only_is_caught() -> None:
    # Full run: 0 +1 -1 0 +1 0. Each prefix is flat on its own last bar, which differs where
    # the full run is not flat: bars 1, 2 and 4; no earlier bar of any prefix differs.
    report = check_lookahead(make_bars(CLOSES), flat_on_last_bar, np.arange(1, 6))

    assert report == LookaheadReport(
        bar_count=6,
        prefixes_checked=5,
        differing_prefixes=3,
        differing_bars=3,
        first=(
            Difference(1, MINUTE_MS, 1, 0, 1),
            Difference(2, 2 * MINUTE_MS, -1, 0, 2),
            Difference(4, 4 * MINUTE_MS, 1, 0, 4),
        ),
    )


def test_a_signal_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match=r"shape \(1,\) for 6 bars"):
        check_lookahead(make_bars(CLOSES), lambda bars: np.zeros(1, np.int8), np.arange(1, 6))


@pytest.mark.parametrize("name", [e.spec.name for e in REGISTRY.entries() if e.source == BUILT_IN])
def test_every_built_in_strategy_is_clean_on_every_prefix_of_a_day(day: Bars, name: str) -> None:
    spec = get_strategy(name)
    params = spec.parse()

    report = check_lookahead(day, lambda bars: spec.signal(bars, params), np.arange(1, 1440))

    assert report == LookaheadReport(1440, 1439, 0, 0, ())


def test_reading_the_next_close_is_caught_on_real_bars(day: Bars) -> None:
    # The file's first two closes: 70311.17 then 70318.00, so the full run is long at 00:00,
    # and the 1-bar prefix, with no next close, flat.
    report = check_lookahead(day, peek_next_close, cut_points(1440, 10, 100, seed=0))

    assert not report.clean
    assert report.first[0] == Difference(0, NOV_1_MS, 1, 0, 0)


def test_a_last_bar_cheat_on_a_built_in_is_caught_on_real_bars(day: Bars) -> None:
    # SMA(30) first exists at bar 29, so the full run is flat until then and the prefixes
    # ending at bars 0, 10 and 20 agree; the one ending at bar 30 is flat where it is not.
    report = check_lookahead(day, sma_flat_on_last_bar, cut_points(1440, 10, 0, seed=0))

    first = report.first[0]
    assert (first.bar, first.open_time_ms, first.prefix_target, first.prefix_end) == (
        30,
        NOV_1_MS + 30 * MINUTE_MS,
        0,
        30,
    )
    assert first.full_target != 0
    assert all(d.bar == d.prefix_end for d in report.first)

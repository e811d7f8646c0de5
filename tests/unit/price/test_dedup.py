"""De-duplication: high-water mark per sequence, bounded window, bounded keys."""

import pytest

from finplat.price.domain.dedup import Deduplicator, Verdict

KEY = ("BTCUSDT", 1, "")


def test_increasing_numbers_are_new() -> None:
    dedup = Deduplicator()

    verdicts = [dedup.check(KEY, n) for n in (1, 2, 5)]

    assert verdicts == [Verdict.NEW] * 3
    assert dedup.stats.new == 3


def test_a_repeated_number_is_a_duplicate_whether_latest_or_older() -> None:
    dedup = Deduplicator()
    for n in (1, 2, 3):
        dedup.check(KEY, n)

    assert dedup.check(KEY, 3) is Verdict.DUPLICATE
    assert dedup.check(KEY, 1) is Verdict.DUPLICATE
    assert dedup.stats.duplicates == 2


def test_an_unseen_older_number_is_out_of_order_then_a_duplicate() -> None:
    dedup = Deduplicator()
    for n in (1, 3):
        dedup.check(KEY, n)

    assert dedup.check(KEY, 2) is Verdict.OUT_OF_ORDER
    assert dedup.check(KEY, 2) is Verdict.DUPLICATE
    assert (dedup.stats.out_of_order, dedup.stats.duplicates) == (1, 1)


def test_sequences_are_independent() -> None:
    dedup = Deduplicator()
    dedup.check(("BTCUSDT", 1, ""), 7)

    assert dedup.check(("ETHUSDT", 1, ""), 7) is Verdict.NEW
    assert dedup.check(("BTCUSDT", 3, "1m"), 7) is Verdict.NEW


def test_memory_is_bounded_by_the_window() -> None:
    dedup = Deduplicator(window=3)
    for n in range(1, 11):
        dedup.check(KEY, n)

    # 8, 9, 10 are remembered; 7 has left the window and can no longer be recognised.
    assert dedup.check(KEY, 8) is Verdict.DUPLICATE
    assert dedup.check(KEY, 7) is Verdict.OUT_OF_ORDER


def test_least_recently_used_keys_are_evicted() -> None:
    dedup = Deduplicator(max_keys=2)
    dedup.check("a", 1)
    dedup.check("b", 1)
    dedup.check("a", 2)  # "a" is now the most recently used

    dedup.check("c", 1)  # evicts "b"

    assert dedup.stats.evicted_keys == 1
    assert dedup.check("a", 2) is Verdict.DUPLICATE
    assert dedup.check("b", 1) is Verdict.NEW


@pytest.mark.parametrize(("window", "keys"), [(0, 1), (1, 0)])
def test_bounds_must_be_positive(window: int, keys: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Deduplicator(window=window, max_keys=keys)

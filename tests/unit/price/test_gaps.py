"""Kline gap detection from the klines themselves."""

from finplat.price.domain.gaps import Gap, GapTracker

M = 60_000


def test_consecutive_closed_klines_leave_no_gap() -> None:
    tracker = GapTracker()

    checks = [tracker.observe("BTCUSDT", "1m", t * M, closed=True) for t in range(5)]

    assert all(c.gap is None and not c.late for c in checks)


def test_forming_updates_of_the_next_candle_are_expected() -> None:
    tracker = GapTracker()
    tracker.observe("BTCUSDT", "1m", 0, closed=True)

    forming = tracker.observe("BTCUSDT", "1m", M, closed=False)
    closed = tracker.observe("BTCUSDT", "1m", M, closed=True)

    assert forming.gap is None
    assert closed.gap is None
    assert not closed.late


def test_a_jump_reveals_the_missing_candles() -> None:
    tracker = GapTracker()
    tracker.observe("BTCUSDT", "1m", 0, closed=True)

    check = tracker.observe("BTCUSDT", "1m", 5 * M, closed=False)

    assert check.gap == Gap("BTCUSDT", "1m", M, 5 * M)
    assert tracker.gaps == 1


def test_a_closed_kline_of_a_backfilled_range_is_late() -> None:
    tracker = GapTracker()
    tracker.observe("BTCUSDT", "1m", 0, closed=True)
    tracker.observe("BTCUSDT", "1m", 2 * M, closed=False)  # gap [1, 2) handed to backfill

    late = tracker.observe("BTCUSDT", "1m", M, closed=True)

    assert late.late
    assert late.gap is None


def test_streams_are_tracked_apart() -> None:
    tracker = GapTracker()
    tracker.observe("BTCUSDT", "1m", 0, closed=True)
    tracker.observe("BTCUSDT", "5m", 0, closed=True)

    assert tracker.observe("ETHUSDT", "1m", 10 * M, closed=True).gap is None
    assert tracker.observe("BTCUSDT", "5m", 5 * M, closed=True).gap is None
    assert tracker.observe("BTCUSDT", "1m", 2 * M, closed=True).gap == Gap(
        "BTCUSDT", "1m", M, 2 * M
    )


def test_month_klines_use_calendar_months() -> None:
    tracker = GapTracker()
    jan, feb, mar = 1704067200000, 1706745600000, 1709251200000  # 2024-01/02/03-01 UTC
    tracker.observe("BTCUSDT", "1M", jan, closed=True)

    assert tracker.observe("BTCUSDT", "1M", feb, closed=True).gap is None
    assert tracker.observe("BTCUSDT", "1M", mar, closed=True).gap is None


def test_a_resumed_stream_reveals_what_was_missed_while_down() -> None:
    # The store's last candle opened at minute 4: minute 5 is the first it lacks.
    tracker = GapTracker({("BTCUSDT", "1m"): 5 * M})

    first = tracker.observe("BTCUSDT", "1m", 9 * M, closed=True)
    next_one = tracker.observe("BTCUSDT", "1m", 10 * M, closed=True)

    assert first.gap == Gap("BTCUSDT", "1m", 5 * M, 9 * M)
    assert not first.late
    assert next_one.gap is None


def test_a_resumed_stream_right_at_its_point_has_no_gap() -> None:
    tracker = GapTracker({("BTCUSDT", "1m"): 5 * M})

    check = tracker.observe("BTCUSDT", "1m", 5 * M, closed=False)

    assert (check.gap, check.late) == (None, False)


def test_a_feed_behind_its_resume_point_starts_afresh_instead_of_being_late() -> None:
    # A replay started over: the store holds candles newer than the feed's first kline.
    tracker = GapTracker({("BTCUSDT", "1m"): 50 * M})

    first = tracker.observe("BTCUSDT", "1m", 3 * M, closed=True)
    second = tracker.observe("BTCUSDT", "1m", 4 * M, closed=True)
    older = tracker.observe("BTCUSDT", "1m", 2 * M, closed=True)

    assert (first.gap, first.late) == (None, False)
    assert (second.gap, second.late) == (None, False)
    assert older.late  # from then on, as for any stream

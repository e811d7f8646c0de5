"""Interval codes, proto values and UTC bucket boundaries."""

from datetime import UTC, datetime

import pytest

from finance.market.v1 import market_pb2
from finplat.market.intervals import INTERVALS, interval_from_proto, parse_interval


def _ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def test_every_binance_interval_maps_to_its_proto_value_and_back() -> None:
    codes = ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h"]
    codes += ["1d", "3d", "1w", "1M"]

    assert list(INTERVALS) == codes
    assert parse_interval("1M").proto == market_pb2.INTERVAL_1MO
    assert parse_interval("1m").proto == market_pb2.INTERVAL_1M
    assert all(interval_from_proto(INTERVALS[c].proto).code == c for c in codes)


@pytest.mark.parametrize(
    ("code", "moment", "start"),
    [
        ("1m", _ms(2024, 10, 1, 12, 34, 56), _ms(2024, 10, 1, 12, 34)),
        ("30m", _ms(2024, 10, 1, 12, 34, 56), _ms(2024, 10, 1, 12, 30)),
        ("4h", _ms(2024, 10, 1, 12, 34, 56), _ms(2024, 10, 1, 12)),
        ("1d", _ms(2024, 10, 1, 23, 59, 59), _ms(2024, 10, 1)),
        ("1w", _ms(2024, 10, 3, 1), _ms(2024, 9, 30)),  # Thursday -> Monday before
        ("1w", _ms(2024, 9, 30), _ms(2024, 9, 30)),  # a Monday starts its own week
        ("1M", _ms(2024, 2, 29, 23), _ms(2024, 2, 1)),
    ],
)
def test_bucket_start_is_aligned_to_utc_boundaries(code: str, moment: int, start: int) -> None:
    assert parse_interval(code).start(moment) == start


@pytest.mark.parametrize(
    ("code", "open_ms", "close_ms"),
    [
        ("1m", _ms(2024, 10, 1), _ms(2024, 10, 1, 0, 1) - 1),
        ("1M", _ms(2024, 2, 1), _ms(2024, 3, 1) - 1),  # leap February
        ("1M", _ms(2024, 12, 1), _ms(2025, 1, 1) - 1),  # year end
    ],
)
def test_close_time_is_the_last_millisecond(code: str, open_ms: int, close_ms: int) -> None:
    assert parse_interval(code).close_time(open_ms) == close_ms


def test_unknown_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown interval"):
        parse_interval("7m")

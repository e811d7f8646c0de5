"""Interval codes, proto values and UTC bucket boundaries."""

from datetime import UTC, datetime

import pytest

from finance.market.v1 import market_pb2
from finplat.market.intervals import (
    INTERVALS,
    interval_from_proto,
    parse_interval,
    parse_interval_or_enum_name,
)


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


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("INTERVAL_1S", "1s"), ("INTERVAL_1M", "1m"), ("INTERVAL_3M", "3m"),
        ("INTERVAL_5M", "5m"), ("INTERVAL_15M", "15m"), ("INTERVAL_30M", "30m"),
        ("INTERVAL_1H", "1h"), ("INTERVAL_2H", "2h"), ("INTERVAL_4H", "4h"),
        ("INTERVAL_6H", "6h"), ("INTERVAL_8H", "8h"), ("INTERVAL_12H", "12h"),
        ("INTERVAL_1D", "1d"), ("INTERVAL_3D", "3d"), ("INTERVAL_1W", "1w"),
        ("INTERVAL_1MO", "1M"),
    ],
)  # fmt: skip
def test_enum_name_parses_to_the_same_interval_as_its_binance_code(name: str, code: str) -> None:
    by_name = parse_interval_or_enum_name(name)

    assert by_name == parse_interval(code)
    assert by_name.code == code
    assert parse_interval_or_enum_name(code) == parse_interval(code)


def test_every_enum_value_but_unspecified_has_a_name_that_parses() -> None:
    names = [v.name for v in market_pb2.Interval.DESCRIPTOR.values if v.number != 0]

    assert len(names) == 16
    assert all(parse_interval_or_enum_name(n).proto == market_pb2.Interval.Value(n) for n in names)


def test_minute_and_month_stay_apart_in_both_forms() -> None:
    assert parse_interval_or_enum_name("INTERVAL_1M").fixed_ms == 60_000
    assert parse_interval_or_enum_name("1m").fixed_ms == 60_000
    assert parse_interval_or_enum_name("INTERVAL_1MO").fixed_ms is None
    assert parse_interval_or_enum_name("1M").fixed_ms is None


@pytest.mark.parametrize(
    "text", ["INTERVAL_UNSPECIFIED", "INTERVAL_7M", "interval_1m", "Interval_1M", "1H", "", "1mo"]
)
def test_unknown_interval_or_enum_name_is_refused_listing_both_forms(text: str) -> None:
    with pytest.raises(ValueError, match="unknown interval") as caught:
        parse_interval_or_enum_name(text)

    message = str(caught.value)
    assert f"unknown interval {text!r}" in message
    assert "Binance code (1s, 1m, 3m," in message
    assert "Interval enum name (INTERVAL_1S, INTERVAL_1M, INTERVAL_3M," in message
    assert message.endswith("INTERVAL_1W, INTERVAL_1MO)")


def test_parse_interval_itself_still_takes_binance_codes_only() -> None:
    # Its callers pass the code on to Binance, which knows no enum names.
    with pytest.raises(ValueError, match="unknown interval 'INTERVAL_1M'"):
        parse_interval("INTERVAL_1M")

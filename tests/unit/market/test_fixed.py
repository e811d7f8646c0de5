"""Scaled integers carry Binance's decimal strings exactly."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finplat.market.fixed import FixedPointError, from_e8, to_e8


@pytest.mark.parametrize(
    ("text", "scaled"),
    [
        ("67012.34000000", 6_701_234_000_000),
        ("0.00000001", 1),
        ("0", 0),
        ("4261.48", 426_148_000_000),
        ("-1.5", -150_000_000),
        ("1e-8", 1),
    ],
)
def test_to_e8(text: str, scaled: int) -> None:
    assert to_e8(text) == scaled


@pytest.mark.parametrize(
    ("scaled", "text"),
    [
        (6_701_234_000_000, "67012.34000000"),
        (1, "0.00000001"),
        (0, "0.00000000"),
        (-150_000_000, "-1.50000000"),
    ],
)
def test_from_e8(scaled: int, text: str) -> None:
    assert from_e8(scaled) == text


@pytest.mark.parametrize("text", ["0.000000001", "abc", "", "NaN", "Infinity"])
def test_refuses_what_it_cannot_hold(text: str) -> None:
    with pytest.raises(FixedPointError):
        to_e8(text)


def test_holds_exactly_the_signed_64_bit_range() -> None:
    # InfluxDB's integer fields are int64; one value past them made it refuse a whole batch.
    assert to_e8("92233720368.54775807") == 9_223_372_036_854_775_807
    assert to_e8("-92233720368.54775808") == -9_223_372_036_854_775_808
    for text in ("92233720368.54775808", "-92233720368.54775809", "1e30"):
        with pytest.raises(FixedPointError, match="64-bit"):
            to_e8(text)


# Every value InfluxDB can hold: 8 decimals within a signed 64-bit integer.
@given(
    st.decimals(
        min_value=Decimal("-92233720368.54775808"),
        max_value=Decimal("92233720368.54775807"),
        places=8,
        allow_nan=False,
    )
)
def test_roundtrip_keeps_the_value(value: Decimal) -> None:
    assert Decimal(from_e8(to_e8(str(value)))) == value

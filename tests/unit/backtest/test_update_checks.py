"""The checks an update passes before it is counted: each bad field rejected with its reason."""

from decimal import Decimal

import pytest

from finplat.backtest.domain.update_checks import (
    CheckedUpdate,
    RejectedUpdateError,
    RejectReason,
    check_update,
)
from tests.unit.backtest.service_support import update


@pytest.mark.parametrize(
    "symbol",
    [
        "",
        "btcusdt",
        "BTCusdt",
        "BTC USDT",
        "BTC-USDT",
        "BTC\x00",
        "BTCUSDT\n",  # `$` in a pattern would let this one through
        "\tBTCUSDT",
        "BTCÜSDT",
        "\uff22\uff34\uff23",  # full-width letters: upper case, but not ASCII
        "BTC\u0661",  # an Arabic-Indic digit, which \d accepts
        "A" * 33,
    ],
)
def test_symbols_outside_upper_case_ascii_of_1_to_32_are_rejected(symbol: str) -> None:
    with pytest.raises(RejectedUpdateError) as caught:
        check_update(update("1", symbol=symbol))

    assert caught.value.reason is RejectReason.SYMBOL
    assert str(caught.value).startswith("invalid_symbol: symbol must be 1-32 upper-case ASCII")


@pytest.mark.parametrize("symbol", ["A", "1INCHUSDT", "BTCUSDT", "A" * 32])
def test_upper_case_ascii_symbols_of_1_to_32_pass(symbol: str) -> None:
    assert check_update(update("1", symbol=symbol)) == CheckedUpdate(Decimal("100"), Decimal("0.1"))


def test_a_huge_value_is_quoted_short_in_the_reason() -> None:
    with pytest.raises(RejectedUpdateError) as caught:
        check_update(update("1", symbol="x" * 10_000))

    assert str(caught.value) == (
        "invalid_symbol: symbol must be 1-32 upper-case ASCII letters or digits: "
        "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (10000 characters)"
    )


@pytest.mark.parametrize(
    ("price", "detail"),
    [
        ("", "price is not a plain decimal: ''"),
        ("abc", "price is not a plain decimal: 'abc'"),
        ("NaN", "price is not a plain decimal: 'NaN'"),
        ("Infinity", "price is not a plain decimal: 'Infinity'"),
        ("-1", "price is not a plain decimal: '-1'"),
        ("+1", "price is not a plain decimal: '+1'"),
        ("1e3", "price is not a plain decimal: '1e3'"),
        (" 1", "price is not a plain decimal: ' 1'"),
        ("1_000", "price is not a plain decimal: '1_000'"),
        ("\u0661", "price is not a plain decimal: '\u0661'"),
        (".5", "price is not a plain decimal: '.5'"),
        ("1" * 21, f"price is not a plain decimal: '{'1' * 21}'"),
        ("0", "price must be positive: '0'"),
        ("0.00000000", "price must be positive: '0.00000000'"),
    ],
)
def test_prices_that_are_not_positive_plain_decimals_are_rejected(price: str, detail: str) -> None:
    with pytest.raises(RejectedUpdateError) as caught:
        check_update(update("1", price=price))

    assert caught.value.reason is RejectReason.PRICE
    assert str(caught.value) == f"invalid_price: {detail}"


@pytest.mark.parametrize("volume", ["-2", "1E-3", "inf", "0x10", "1.", "1" * 21])
def test_volumes_that_are_not_plain_decimals_are_rejected(volume: str) -> None:
    with pytest.raises(RejectedUpdateError) as caught:
        check_update(update("1", volume=volume))

    assert caught.value.reason is RejectReason.VOLUME


def test_widest_plain_decimals_and_an_absent_volume_pass_exactly() -> None:
    widest = "12345678901234567890.12345678901234567890"

    checked = check_update(update("1", price=widest, volume=""))

    assert checked == CheckedUpdate(Decimal(widest), Decimal(0))
    assert str(checked.price) == widest


@pytest.mark.parametrize("timestamp", [-1, 10**13, 1_700_000_000_000_000])
def test_timestamps_that_are_not_epoch_milliseconds_are_rejected(timestamp: int) -> None:
    with pytest.raises(RejectedUpdateError) as caught:
        check_update(update("1", timestamp=timestamp))

    assert caught.value.reason is RejectReason.TIMESTAMP
    assert str(caught.value) == (
        f"invalid_timestamp: timestamp must be epoch milliseconds below 10000000000000: {timestamp}"
    )


@pytest.mark.parametrize("timestamp", [0, 9_999_999_999_999])
def test_timestamps_from_unset_to_the_last_plausible_millisecond_pass(timestamp: int) -> None:
    assert check_update(update("1", timestamp=timestamp)).price == Decimal("100.00")


def test_event_ids_longer_than_128_characters_are_rejected() -> None:
    check_update(update("e" * 128))

    with pytest.raises(RejectedUpdateError) as caught:
        check_update(update("e" * 129))

    assert caught.value.reason is RejectReason.EVENT_ID


def test_the_first_bad_field_names_the_reason() -> None:
    with pytest.raises(RejectedUpdateError) as caught:
        check_update(update("1", symbol="btc", price="NaN", timestamp=-1))

    assert caught.value.reason is RejectReason.SYMBOL

"""The shard split: sorted distinct symbols dealt round-robin, the same in every instance, each
symbol owned once, and configurations that would leave a shard without a symbol refused."""

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from finplat.price.adapters.binance.settings import FeedSettings
from finplat.price.domain.shards import owned_symbols

FIVE = ("SOLUSDT", "BTCUSDT", "XRPUSDT", "ETHUSDT", "BNBUSDT")

_symbols = st.lists(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8), min_size=1, max_size=40
)


def test_five_symbols_into_two_shards() -> None:
    # Sorted: BNBUSDT, BTCUSDT, ETHUSDT, SOLUSDT, XRPUSDT; positions 0, 2, 4 and 1, 3.
    assert owned_symbols(FIVE, 0, 2) == ("BNBUSDT", "ETHUSDT", "XRPUSDT")
    assert owned_symbols(FIVE, 1, 2) == ("BTCUSDT", "SOLUSDT")


def test_one_shard_owns_every_symbol_sorted() -> None:
    assert owned_symbols(FIVE, 0, 1) == ("BNBUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


def test_a_repeated_symbol_is_owned_once() -> None:
    symbols = ("ETHUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT", "SOLUSDT")

    assert [owned_symbols(symbols, i, 3) for i in range(3)] == [
        ("BTCUSDT",),
        ("ETHUSDT",),
        ("SOLUSDT",),
    ]


@given(_symbols, st.integers(1, 12), st.randoms())
def test_every_symbol_is_owned_by_exactly_one_shard_whatever_the_order(
    symbols: list[str], count: int, rng: random.Random
) -> None:
    count = min(count, len(set(symbols)))
    shards = [owned_symbols(symbols, i, count) for i in range(count)]
    shuffled = rng.sample(symbols, len(symbols))

    owners = Counter(symbol for shard in shards for symbol in shard)
    assert owners == Counter(set(symbols))  # each distinct symbol once, nothing else
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced within one symbol
    # Another instance given the list in another order computes the same split.
    assert [owned_symbols(shuffled, i, count) for i in range(count)] == shards


@pytest.mark.parametrize(("index", "count"), [(2, 2), (5, 2), (-1, 2), (0, 0)])
def test_an_index_outside_the_shards_is_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError, match=f"shard index {index} is not within"):
        owned_symbols(FIVE, index, count)


def test_more_shards_than_distinct_symbols_is_refused() -> None:
    with pytest.raises(ValueError, match="3 shards for 2 distinct symbols"):
        owned_symbols(("BTCUSDT", "ETHUSDT", "BTCUSDT"), 0, 3)


def test_feed_settings_give_the_owned_symbols_upper_cased() -> None:
    settings = FeedSettings(symbols=("solusdt", "btcusdt", "ethusdt"), shard_index=1, shard_count=2)

    assert settings.owned == ("ETHUSDT",)


def test_feed_settings_default_to_one_shard_owning_everything() -> None:
    settings = FeedSettings(symbols=FIVE)

    assert (settings.shard_index, settings.shard_count) == (0, 1)
    assert settings.owned == tuple(sorted(FIVE))


def test_feed_settings_refuse_an_index_not_below_the_count_naming_both_variables() -> None:
    with pytest.raises(ValidationError) as refused:
        FeedSettings(symbols=FIVE, shard_index=2, shard_count=2)

    message = str(refused.value)
    assert "FINPLAT_PRICE_FEED__SHARD_INDEX (2)" in message
    assert "FINPLAT_PRICE_FEED__SHARD_COUNT (2)" in message


@pytest.mark.parametrize("bad", [{"shard_index": -1}, {"shard_count": 0}])
def test_feed_settings_refuse_negative_indexes_and_no_shards(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        FeedSettings.model_validate(bad)


def test_feed_settings_refuse_a_shard_that_would_own_no_symbol() -> None:
    with pytest.raises(ValidationError, match="3 shards for 2 distinct symbols"):
        FeedSettings(symbols=("BTCUSDT", "ETHUSDT"), shard_index=0, shard_count=3)

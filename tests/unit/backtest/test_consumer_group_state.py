"""The consumer group's state moving between members, on the default SQLite file."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.backtest import consumer_group_cases as cases


@pytest.fixture
def new_store(tmp_path: Path) -> Iterator[cases.StoreAt]:
    with cases.store_at(tmp_path / "consumer.sqlite3") as stores:
        yield stores


def test_a_partition_moves_with_its_statistics_window_and_offset(new_store: cases.StoreAt) -> None:
    cases.a_partition_moves_with_its_statistics_window_and_offset(new_store)


def test_a_member_the_group_gave_up_on_writes_nothing(new_store: cases.StoreAt) -> None:
    cases.a_member_the_group_gave_up_on_writes_nothing(new_store)


def test_a_batch_touching_a_lost_partition_is_saved_for_none(
    new_store: cases.StoreAt,
) -> None:
    cases.a_batch_touching_a_lost_partition_is_saved_for_none(new_store)


def test_a_window_the_version_before_kept_per_key_is_taken_over(new_store: cases.StoreAt) -> None:
    cases.a_window_the_version_before_kept_per_key_is_taken_over(new_store)

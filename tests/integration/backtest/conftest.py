"""A PostgreSQL database of a test's own on the stack, for the backtest service's stores."""

from collections.abc import Iterator

import pytest

from finplat.stack.settings import StackSettings
from tests.stores import postgres_database


@pytest.fixture
def fresh_database_url(stack: None) -> Iterator[str]:
    """The URL (password included, as `FINPLAT_BACKTEST_DATABASE_URL` holds it) of a new,
    empty database on the stack's PostgreSQL, dropped after the test."""
    with postgres_database(StackSettings()) as url:
        yield url

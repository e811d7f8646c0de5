"""The result and operation stores on the stack's real PostgreSQL: the cases SQLite passes in
tests/unit/backtest/test_result_store.py, each on a database of its own, and what only a
server has: instances starting at once, lost connections, a wrong password."""

import asyncio

import psycopg
import pytest
from sqlalchemy import URL

from finplat.backtest.adapters.database import postgres_url
from finplat.backtest.adapters.operation_store import OperationStore
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.errors import StoreError
from tests.backtest_stores import OperationStoreCases, ResultStoreCases, backtest

pytestmark = [pytest.mark.integration, pytest.mark.scaleout]


@pytest.fixture
def location(fresh_database_url: str) -> URL:
    return postgres_url(fresh_database_url)


class TestResultStoreOnPostgres(ResultStoreCases):
    pass


class TestOperationStoreOnPostgres(OperationStoreCases):
    pass


@pytest.mark.asyncio
async def test_instances_starting_at_once_create_the_tables_once(location: URL) -> None:
    # Each store on a thread of its own: the six really do open at once.
    stores = await asyncio.gather(
        ResultStore.open(location), ResultStore.open(location), ResultStore.open(location),
        OperationStore.open(location), OperationStore.open(location),
        OperationStore.open(location),
    )  # fmt: skip
    run = backtest(1)
    await stores[0].add_backtest(run)
    got = await stores[1].get_backtest(run.id)
    for store in stores:
        await store.close()

    assert got == run


def _drop_connections(location: URL) -> int:
    """Disconnect every session of the test's database, as a server restart would."""
    with psycopg.connect(
        location.set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
    ) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (location.database,),
        ).fetchall()
    return len(rows)


@pytest.mark.asyncio
async def test_a_lost_connection_costs_a_reconnect_not_a_failed_call(location: URL) -> None:
    results = await ResultStore.open(location)
    operations = await OperationStore.open(location)
    run = backtest(1)
    await results.add_backtest(run)
    await operations.claim_unfinished("instance", 1, 1_000)

    dropped = await asyncio.to_thread(_drop_connections, location)
    got = await results.get_backtest(run.id)
    unfinished = await operations.claim_unfinished("instance", 1, 1_000)
    await operations.close()
    await results.close()

    assert dropped == 2  # one connection per store
    assert got == run
    assert unfinished == []


@pytest.mark.asyncio
async def test_a_wrong_password_is_a_store_error_that_does_not_show_it(location: URL) -> None:
    wrong = location.set(password="not-the-password-4711")

    with pytest.raises(StoreError) as caught:
        await ResultStore.open(wrong)

    message = str(caught.value)
    assert "password authentication failed" in message
    assert "not-the-password-4711" not in message
    assert f"finplat:***@{location.host}:{location.port}/{location.database}" in message

"""Stored backtests, sweeps, walk-forwards and operations in a SQLite file (the shared cases of
`tests.backtest_stores`; tests/integration/backtest runs them on PostgreSQL), and what only
the file has: the tables of files written before SQLAlchemy, WAL."""

import sqlite3
from pathlib import Path

import pytest
from google.longrunning import operations_pb2  # type: ignore[import-untyped]
from pydantic import SecretStr
from sqlalchemy import make_url

from finplat.backtest.adapters import database
from finplat.backtest.adapters.operation_store import OperationStore
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.errors import StoreError
from finplat.backtest.service.ids import is_id, new_id
from tests.backtest_stores import OperationStoreCases, ResultStoreCases, backtest


@pytest.fixture
def location(tmp_path: Path) -> Path:
    """A file in a folder the store creates."""
    return tmp_path / "nested" / "results.sqlite3"


class TestResultStoreOnSqlite(ResultStoreCases):
    pass


class TestOperationStoreOnSqlite(OperationStoreCases):
    pass


# The schema as the stores created it with SQL of their own, before SQLAlchemy (less the sweep
# tables: a file of an older version still, which lacks them).
_EARLIER_SCHEMA = """
CREATE TABLE backtests (id TEXT PRIMARY KEY, create_time_ms INTEGER NOT NULL,
  strategy TEXT NOT NULL, symbol TEXT NOT NULL, summary BLOB NOT NULL, full BLOB NOT NULL);
CREATE INDEX backtests_newest ON backtests (create_time_ms DESC, id DESC);
CREATE INDEX backtests_by_strategy ON backtests (strategy, create_time_ms DESC, id DESC);
CREATE INDEX backtests_by_symbol ON backtests (symbol, create_time_ms DESC, id DESC);
CREATE TABLE operations (name TEXT PRIMARY KEY, create_time_ms INTEGER NOT NULL,
  done INTEGER NOT NULL, request BLOB NOT NULL, operation BLOB NOT NULL);
CREATE INDEX operations_newest ON operations (create_time_ms DESC, name DESC);
CREATE TABLE operation_chunks (name TEXT NOT NULL, chunk INTEGER NOT NULL,
  plan TEXT NOT NULL, metrics TEXT NOT NULL, PRIMARY KEY (name, chunk));
"""


@pytest.mark.asyncio
async def test_a_file_of_the_earlier_schema_opens_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite3"
    earlier = backtest(1)
    with sqlite3.connect(path) as db:
        db.executescript(_EARLIER_SCHEMA)
        db.execute(
            "INSERT INTO backtests VALUES (?, ?, ?, ?, ?, ?)",
            (earlier.id, earlier.create_time.ToMilliseconds(), earlier.strategy,
             earlier.data.symbol, earlier.SerializeToString(), earlier.SerializeToString()),
        )  # fmt: skip
        operation = operations_pb2.Operation(name="operations/a").SerializeToString()
        db.execute("INSERT INTO operations VALUES ('operations/a', 1, 0, x'', ?)", (operation,))
    db.close()

    results = await ResultStore.open(path)
    operations = await OperationStore.open(path)
    later = backtest(2)
    await results.add_backtest(later)
    listed, _ = await results.list_backtests(10)
    # Its operation has no lease: any instance may claim it, and a cancel waits for that one.
    cancelled = await operations.request_cancel("operations/a")
    unfinished = await operations.claim_unfinished("instance", 1, 1_000)
    flagged = await operations.cancel_requested(["operations/a"])
    await operations.close()
    await results.close()
    with sqlite3.connect(path) as db:
        journal = db.execute("PRAGMA journal_mode").fetchone()
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    db.close()

    assert [r.id for r in listed] == [later.id, earlier.id]
    assert cancelled
    assert [u.operation.name for u in unfinished] == ["operations/a"]
    assert flagged == {"operations/a"}
    # The tables missing were added beside the earlier ones.
    assert {"sweeps", "sweep_rows", "walk_forwards", "operation_leases"} <= tables
    assert journal == ("wal",)


def test_a_database_url_is_postgresql_for_psycopg_and_never_shows_its_password(
    tmp_path: Path,
) -> None:
    url = database.postgres_url(
        "postgresql://finplat:s3cret@db.example:5433/results?sslmode=require"
    )
    given = SecretStr("postgresql+psycopg://finplat:s3cret@db.example/results")

    assert url.drivername == "postgresql+psycopg"
    assert (url.password, url.port, url.query) == ("s3cret", 5433, {"sslmode": "require"})
    assert (
        database.describe(url)
        == "postgresql+psycopg://finplat:***@db.example:5433/results?sslmode=require"
    )
    assert database.location(tmp_path / "r.sqlite3", None) == tmp_path / "r.sqlite3"
    assert database.location(tmp_path / "r.sqlite3", given) == make_url(given.get_secret_value())
    for wrong in ("mysql://finplat:s3cret@db.example/results", "sqlite:///r.db", "s3cret"):
        with pytest.raises(StoreError) as caught:
            database.postgres_url(wrong)
        assert "s3cret" not in str(caught.value)


def test_ids_sort_by_time_and_encode_the_millisecond() -> None:
    early = new_id(1000, bytes(10))
    late = new_id(1001, bytes(10))

    # ULID layout: 10 characters of time (1000 = 31 * 32 + 8 -> "Z8"), 16 of randomness.
    assert early == "00000000Z8" + "0" * 16
    assert early < late
    assert is_id(new_id())
    assert not is_id("not-an-id")

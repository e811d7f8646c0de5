"""The backtest service's database (stored results and operations, the consumer's state): SQLite
files (the default), or PostgreSQL, which several instances share (`FINPLAT_BACKTEST_DATABASE_URL`).

Both through SQLAlchemy Core: one description of the tables and statements becomes either
engine's SQL (placeholders, BLOB or BYTEA, BIGINT, upserts, the tables' DDL); psycopg 3
talks to PostgreSQL, the standard library's sqlite3 to SQLite. Each store has a `Database`:
its own engine, used from one worker thread, so the event loop never blocks on a query.

Each call of a store is one transaction. On SQLite, BEGIN is sent by us (the sqlite3 module's own
guess at when a transaction starts leaves SELECTs and DDL outside), in WAL mode with
`synchronous=FULL`: a result acknowledged to a client survives a power loss. On PostgreSQL,
READ COMMITTED is enough: no call reads, then writes what it read.
"""

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import SecretStr
from sqlalchemy import (
    URL,
    Connection,
    Engine,
    Insert,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    func,
    make_url,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from finplat.backtest.errors import StoreError

T = TypeVar("T")
Synchronous = Literal["NORMAL", "FULL"]

# Where a store lives: a SQLite file, or a PostgreSQL database (see `postgres_url`).
Location = Path | URL

# Ids and names sort byte by byte on both engines (SQLite compares text with memcmp): the
# newest-first pages are the same whatever the PostgreSQL server's locale.
KEY = Text().with_variant(Text(collation="C"), "postgresql")

_POSTGRES_DRIVERS = frozenset({"postgresql", "postgresql+psycopg"})
# Seconds a connection attempt to PostgreSQL may take, unless the URL says (libpq waits forever).
_CONNECT_TIMEOUT_S = 10
# Taken while a store creates its tables: instances starting at once would both find a table
# missing and both create it, and the second CREATE would fail. Any constant of our own.
_SCHEMA_LOCK = 0x66696E706C6174  # "finplat"


def location(path: Path, url: SecretStr | None) -> Location:
    """PostgreSQL at ``url`` when one is set, else the SQLite file at ``path``."""
    return path if url is None else postgres_url(url.get_secret_value())


def postgres_url(url: str) -> URL:
    """A `postgresql://user:password@host:port/database` URL, for psycopg 3.

    `StoreError` for anything else; the message never shows the URL's password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # Not even parsed: echoing it could show a password.
        raise StoreError("the database URL is not a URL") from None
    if parsed.drivername not in _POSTGRES_DRIVERS:
        raise StoreError(
            f"database URL {describe(parsed)}: only postgresql:// URLs are supported "
            "(without one, the service keeps SQLite files)"
        )
    return parsed.set(drivername="postgresql+psycopg")


def describe(location: Location) -> str:
    """The location for messages and logs: a URL without its password."""
    if isinstance(location, Path):
        return str(location)
    return location.render_as_string(hide_password=True)


def upsert(connection: Connection, table: Table, row: Mapping[str, Any]) -> None:
    """Insert a row of ``table``, or replace the row with its primary key."""
    connection.execute(_upsert_statement(connection.dialect.name, table), row)


def dialect_insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``table`` as ``dialect``'s own construct: the one with ON CONFLICT,
    which both spell alike (`on_conflict_do_update`)."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


@functools.cache
def _upsert_statement(dialect: str, table: Table) -> Insert:
    insert = dialect_insert(dialect, table)
    values = {c.name: insert.excluded[c.name] for c in table.columns if not c.primary_key}
    return insert.on_conflict_do_update(index_elements=table.primary_key.columns, set_=values)


class Database:
    """A store's engine on one worker thread: `run` does one transaction there.

    Driver errors become `StoreError`s named after the store (``name``)."""

    def __init__(self, location: Location, name: str) -> None:
        self._location = location
        self._name = name
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name.replace(" ", "-"))
        self._engine: Engine | None = None
        # SQLite: the store's one connection, kept open (a file has no server to lose it, and
        # a checkout from the pool per call adds half again to the cost of a small read).
        # PostgreSQL: one from the pool per call, pinged first, so a restarted server costs
        # a reconnect rather than a failed call.
        self._kept: Connection | None = None

    async def open(self, metadata: MetaData) -> None:
        """Connect, and create the tables and indexes of ``metadata`` that are missing."""

        def open_() -> None:
            engine = make_engine(self._location)
            try:
                create_tables(engine, metadata)
                if isinstance(self._location, Path):
                    self._kept = engine.connect()
            except BaseException:
                engine.dispose()
                raise
            self._engine = engine

        try:
            await self._in_thread(open_)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work`` in one transaction, committed when it returns, rolled back if it fails."""

        def transaction() -> T:
            if self._kept is not None:
                with self._kept.begin():
                    return work(self._kept)
            if self._engine is None:
                raise StoreError(f"{self._name} is not open")
            with self._engine.begin() as connection:
                return work(connection)

        return await self._in_thread(transaction)

    async def close(self) -> None:
        """Close the connections and stop the worker thread."""

        def dispose() -> None:
            if self._kept is not None:
                self._kept.close()
                self._kept = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

        if self._engine is not None:  # else closed already
            await self._in_thread(dispose)
        self._executor.shutdown(wait=True)

    async def _in_thread(self, work: Callable[[], T]) -> T:
        def guarded() -> T:
            try:
                return work()
            except SQLAlchemyError as exc:
                where = describe(self._location)
                raise StoreError(f"{self._name} {where}: {_reason(exc)}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, guarded)


def _reason(exc: SQLAlchemyError) -> str:
    # The driver's own message: SQLAlchemy's adds the whole statement.
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig).strip()
    return str(exc)


def create_tables(engine: Engine, metadata: MetaData) -> None:
    """Create the tables and indexes of ``metadata`` that are missing (on PostgreSQL under
    `_SCHEMA_LOCK`)."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # PostgreSQL's DDL is transactional: the lock is held until commit.
            connection.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
        metadata.create_all(connection)


def make_engine(
    location: Location, synchronous: Synchronous = "FULL", pool_size: int = 1
) -> Engine:
    """An engine on `location`; on SQLite, WAL and `synchronous` on every connection.

    `pool_size`: connections kept, one per thread that uses the engine at once."""
    if isinstance(location, Path):
        return _sqlite_engine(location, synchronous)
    connect_args = (
        {} if "connect_timeout" in location.query else {"connect_timeout": _CONNECT_TIMEOUT_S}
    )
    # Connections checked before each use, so a restarted server costs a reconnect, not a
    # failed call.
    return create_engine(
        location,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args=connect_args,
    )


def _sqlite_engine(path: Path, synchronous: Synchronous) -> Engine:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    engine = create_engine(URL.create("sqlite", database=str(path)), hide_parameters=True)

    def connected(connection: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
        connection.isolation_level = None  # the driver sends no BEGIN of its own...
        # WAL lets readers proceed while a batch is written. NORMAL syncs at checkpoints
        # only: it survives a process crash, and a power loss rolls back whole transactions,
        # never half ones. FULL also syncs each commit: a power loss loses nothing committed.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")

    event.listen(engine, "connect", connected)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_begin(connection: Connection) -> None:
    # ...we do, for every transaction SQLAlchemy starts; on the driver's connection, as
    # SQLAlchemy's own execution of it would cost as much as the call's query.
    connection.connection.driver_connection.execute("BEGIN")  # type: ignore[union-attr]

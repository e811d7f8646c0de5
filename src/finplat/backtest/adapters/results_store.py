"""Stored backtests, sweeps and walk-forwards in SQLite: the proto bytes plus the columns we
filter and sort by; a sweep's whole table (every combination, not only the ranked results its
proto holds) as pieces of rows in Arrow's IPC format, zstd-compressed, read back one at a time.

One connection on one worker thread: every call is queued to it, so the event loop never
blocks on disk (the operation store has its own connection to the same file; WAL lets both
write, one transaction at a time). `synchronous=FULL`: a run acknowledged to a client
survives a power loss. Listing reads a summary blob (no trades, no equity curve) per row.
"""

import asyncio
import base64
import binascii
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.sqlite import connect, transaction
from finplat.backtest.errors import NotFoundError, StoreError

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS backtests (id TEXT PRIMARY KEY, create_time_ms INTEGER NOT NULL,"
    " strategy TEXT NOT NULL, symbol TEXT NOT NULL, summary BLOB NOT NULL, full BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS backtests_newest ON backtests (create_time_ms DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS backtests_by_strategy"
    " ON backtests (strategy, create_time_ms DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS backtests_by_symbol"
    " ON backtests (symbol, create_time_ms DESC, id DESC)",
    "CREATE TABLE IF NOT EXISTS sweeps (id TEXT PRIMARY KEY, create_time_ms INTEGER NOT NULL,"
    " strategy TEXT NOT NULL, symbol TEXT NOT NULL, full BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sweep_rows (sweep_id TEXT NOT NULL, piece INTEGER NOT NULL,"
    " rows BLOB NOT NULL, PRIMARY KEY (sweep_id, piece))",
    "CREATE TABLE IF NOT EXISTS walk_forwards (id TEXT PRIMARY KEY,"
    " create_time_ms INTEGER NOT NULL, strategy TEXT NOT NULL, symbol TEXT NOT NULL,"
    " full BLOB NOT NULL)",
)
_LIST = (
    "SELECT summary FROM backtests WHERE (?1 = '' OR strategy = ?1) AND (?2 = '' OR symbol = ?2)"
    " AND (?3 IS NULL OR (create_time_ms, id) < (?3, ?4))"
    " ORDER BY create_time_ms DESC, id DESC LIMIT ?5"
)


class InvalidPageTokenError(ValueError):
    """A page token this store did not hand out."""


def encode_page_token(create_time_ms: int, run_id: str) -> str:
    """Opaque keyset position: after the run created at `create_time_ms` with `run_id`."""
    return base64.urlsafe_b64encode(f"{create_time_ms}:{run_id}".encode()).decode()


def decode_page_token(token: str) -> tuple[int, str]:
    """The position in a token from `encode_page_token`."""
    try:
        ms, run_id = base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)
        return int(ms), run_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidPageTokenError(f"invalid page token {token!r}") from None


_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _ipc_table(data: bytes) -> pa.Table:
    with pa.ipc.open_stream(data) as reader:
        table: pa.Table = reader.read_all()
    return table


def _summary(backtest: backtest_pb2.Backtest) -> bytes:
    summary = backtest_pb2.Backtest()
    summary.CopyFrom(backtest)
    summary.ClearField("trades")
    summary.ClearField("equity_curve")
    return summary.SerializeToString()


class ResultStore:
    """Backtests and sweeps that survive restarts; open with `ResultStore.open`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="results-store")
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> "ResultStore":
        """Create or open the file and its tables."""
        store = cls(path)
        await store._call(store._open)
        return store

    def _open(self) -> None:
        self._db = connect(self._path, synchronous="FULL")
        for statement in _SCHEMA:
            self._db.execute(statement)

    async def _call(self, work: Callable[[], T]) -> T:
        def guarded() -> T:
            try:
                return work()
            except sqlite3.Error as exc:
                raise StoreError(f"results store {self._path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, guarded)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("results store is not open")
        return self._db

    async def add_backtest(self, backtest: backtest_pb2.Backtest) -> None:
        """Store a run; its id must be new."""
        row = (
            backtest.id,
            backtest.create_time.ToMilliseconds(),
            backtest.strategy,
            backtest.data.symbol,
            _summary(backtest),
            backtest.SerializeToString(),
        )
        await self._call(
            lambda: self._conn().execute("INSERT INTO backtests VALUES (?, ?, ?, ?, ?, ?)", row)
        )

    async def get_backtest(self, run_id: str) -> backtest_pb2.Backtest:
        """The stored run; `NotFoundError` when there is none."""
        sql = "SELECT full FROM backtests WHERE id = ?"
        row = await self._call(lambda: self._conn().execute(sql, (run_id,)).fetchone())
        if row is None:
            raise NotFoundError(f"no backtest with id {run_id!r}")
        return backtest_pb2.Backtest.FromString(row[0])

    async def list_backtests(
        self, page_size: int, page_token: str = "", strategy: str = "", symbol: str = ""
    ) -> tuple[list[backtest_pb2.Backtest], str]:
        """Summaries newest first, and the token of the next page ("" on the last one)."""
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after_ms, after_id = decode_page_token(page_token) if page_token else (None, "")
        params = (strategy, symbol, after_ms, after_id, size + 1)
        rows = await self._call(lambda: self._conn().execute(_LIST, params).fetchall())
        runs = [backtest_pb2.Backtest.FromString(blob) for (blob,) in rows[:size]]
        more = len(rows) > size
        last = runs[-1] if runs else None
        token = (
            encode_page_token(last.create_time.ToMilliseconds(), last.id) if more and last else ""
        )
        return runs, token

    async def add_sweep(self, sweep: backtest_pb2.Sweep) -> None:
        """Store a sweep (again, if its id is taken: the same sweep, resumed)."""
        row = (
            sweep.id,
            sweep.create_time.ToMilliseconds(),
            sweep.strategy,
            sweep.data.symbol,
            sweep.SerializeToString(),
        )
        # OR REPLACE: an operation stopped between storing its sweep and its end stores it
        # again when resumed, the same sweep under the same id.
        await self._call(
            lambda: self._conn().execute(
                "INSERT OR REPLACE INTO sweeps VALUES (?, ?, ?, ?, ?)", row
            )
        )

    async def get_sweep(self, sweep_id: str) -> backtest_pb2.Sweep:
        """The stored sweep; `NotFoundError` when there is none."""
        sql = "SELECT full FROM sweeps WHERE id = ?"
        row = await self._call(lambda: self._conn().execute(sql, (sweep_id,)).fetchone())
        if row is None:
            raise NotFoundError(f"no sweep with id {sweep_id!r}")
        return backtest_pb2.Sweep.FromString(row[0])

    async def add_sweep_rows(self, sweep_id: str, piece: int, rows: pa.Table) -> None:
        """Store a piece of a sweep's whole table. Pieces are stored in order from 0, and
        piece 0 replaces whatever the sweep had (a resumed sweep stores its table again)."""
        data = await asyncio.to_thread(_ipc_bytes, rows)

        def write(db: sqlite3.Connection) -> None:
            if piece == 0:
                db.execute("DELETE FROM sweep_rows WHERE sweep_id = ?", (sweep_id,))
            db.execute("INSERT INTO sweep_rows VALUES (?, ?, ?)", (sweep_id, piece, data))

        # One transaction: the old pieces never outlive a new piece 0.
        await self._call(lambda: transaction(self._conn(), write))

    async def sweep_row_pieces(self, sweep_id: str) -> list[int]:
        """The pieces of a sweep's whole table, in order (none for a sweep stored without)."""
        sql = "SELECT piece FROM sweep_rows WHERE sweep_id = ? ORDER BY piece"
        rows = await self._call(lambda: self._conn().execute(sql, (sweep_id,)).fetchall())
        return [int(piece) for (piece,) in rows]

    async def get_sweep_rows(self, sweep_id: str, piece: int) -> pa.Table:
        """One piece of a sweep's whole table; `NotFoundError` when there is none."""
        sql = "SELECT rows FROM sweep_rows WHERE sweep_id = ? AND piece = ?"
        row = await self._call(lambda: self._conn().execute(sql, (sweep_id, piece)).fetchone())
        if row is None:
            raise NotFoundError(f"sweep {sweep_id!r} has no piece {piece} of its table")
        return await asyncio.to_thread(_ipc_table, row[0])

    async def add_walk_forward(self, walk_forward: backtest_service_pb2.WalkForward) -> None:
        """Store a walk-forward (again, if its id is taken, as `add_sweep`)."""
        row = (
            walk_forward.id,
            walk_forward.create_time.ToMilliseconds(),
            walk_forward.strategy,
            walk_forward.data.symbol,
            walk_forward.SerializeToString(),
        )
        sql = "INSERT OR REPLACE INTO walk_forwards VALUES (?, ?, ?, ?, ?)"  # as add_sweep's
        await self._call(lambda: self._conn().execute(sql, row))

    async def get_walk_forward(self, walk_forward_id: str) -> backtest_service_pb2.WalkForward:
        """The stored walk-forward; `NotFoundError` when there is none."""
        sql = "SELECT full FROM walk_forwards WHERE id = ?"
        row = await self._call(lambda: self._conn().execute(sql, (walk_forward_id,)).fetchone())
        if row is None:
            raise NotFoundError(f"no walk-forward with id {walk_forward_id!r}")
        return backtest_service_pb2.WalkForward.FromString(row[0])

    async def close(self) -> None:
        """Close the file and stop the worker thread."""

        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._call(close)
        self._executor.shutdown(wait=True)

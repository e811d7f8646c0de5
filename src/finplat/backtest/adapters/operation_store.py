"""Long-running operations and their finished chunks of work, kept in the results file.

An operation is its request and its latest `google.longrunning.Operation` (metadata, then the
response or the error); each finished chunk of a sweep is a row of its own, written in the
same transaction as the progress it adds, so a crash loses at most the chunks still running.
One connection on one worker thread, as `ResultStore`; `synchronous=FULL` for the same reason.
"""

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TypeVar

# googleapis-common-protos has no py.typed marker (and types-protobuf owns `google`'s stubs).
from google.longrunning import operations_pb2  # type: ignore[import-untyped]

from finplat.backtest.adapters.results_store import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_page_token,
    encode_page_token,
)
from finplat.backtest.adapters.sqlite import connect, transaction
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.errors import NotFoundError, StoreError

T = TypeVar("T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS operations (name TEXT PRIMARY KEY,"
    " create_time_ms INTEGER NOT NULL, done INTEGER NOT NULL, request BLOB NOT NULL,"
    " operation BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS operations_newest ON operations (create_time_ms DESC, name DESC)",
    "CREATE TABLE IF NOT EXISTS operation_chunks (name TEXT NOT NULL, chunk INTEGER NOT NULL,"
    " plan TEXT NOT NULL, metrics TEXT NOT NULL, PRIMARY KEY (name, chunk))",
)
_LIST = (
    "SELECT create_time_ms, operation FROM operations"
    " WHERE (?1 IS NULL OR (create_time_ms, name) < (?1, ?2))"
    " ORDER BY create_time_ms DESC, name DESC LIMIT ?3"
)


@dataclass(frozen=True, slots=True)
class KeptChunk:
    """A finished chunk: the metrics of its combinations, and the plan they were computed for
    (a fingerprint of the bars and combinations), so that a resumed run uses only chunks of
    the plan it has again."""

    plan: str
    metrics: list[Metrics]


@dataclass(frozen=True, slots=True)
class Unfinished:
    """An operation a restart interrupted: what it was asked and how far it got."""

    request: bytes
    operation: operations_pb2.Operation


def _encode_metrics(metrics: Sequence[Metrics]) -> str:
    # JSON rows in field order; Python's JSON keeps NaN (undefined ratios) as NaN.
    return json.dumps([astuple(m) for m in metrics])


def _decode_metrics(text: str) -> list[Metrics]:
    return [Metrics(*row) for row in json.loads(text)]


class OperationStore:
    """Operations that survive restarts; open with `OperationStore.open`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="operation-store")
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> "OperationStore":
        """Create or open the file and its tables."""
        store = cls(path)
        await asyncio.get_running_loop().run_in_executor(store._executor, store._open)
        return store

    def _open(self) -> None:
        db = connect(self._path, synchronous="FULL")
        try:
            for statement in _SCHEMA:
                db.execute(statement)
        except sqlite3.Error as exc:
            raise StoreError(f"operation store {self._path}: {exc}") from exc
        self._db = db

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def guarded() -> T:
            if self._db is None:
                raise StoreError("operation store is not open")
            try:
                return work(self._db)
            except sqlite3.Error as exc:
                raise StoreError(f"operation store {self._path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, guarded)

    async def add(
        self, operation: operations_pb2.Operation, create_time_ms: int, request: bytes
    ) -> None:
        """Store a new operation and the request it runs."""
        row = (operation.name, create_time_ms, int(operation.done), request,
               operation.SerializeToString())  # fmt: skip
        await self._call(
            lambda db: db.execute("INSERT INTO operations VALUES (?, ?, ?, ?, ?)", row)
        )

    async def save(self, operation: operations_pb2.Operation) -> None:
        """Replace the stored state of an operation: its progress, or its end, which also
        forgets its chunks (the response holds what they were for)."""
        row = (int(operation.done), operation.SerializeToString(), operation.name)

        def write(db: sqlite3.Connection) -> None:
            db.execute("UPDATE operations SET done = ?, operation = ? WHERE name = ?", row)
            if operation.done:
                db.execute("DELETE FROM operation_chunks WHERE name = ?", (operation.name,))

        await self._call(lambda db: transaction(db, write))

    async def add_chunk(
        self,
        operation: operations_pb2.Operation,
        chunk: int,
        plan: str,
        metrics: Sequence[Metrics],
    ) -> None:
        """Keep a finished chunk of ``plan`` and the progress it makes, in one transaction."""
        row = (operation.name, chunk, plan, _encode_metrics(metrics))
        state = operation.SerializeToString()

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO operation_chunks VALUES (?, ?, ?, ?)", row)
            db.execute("UPDATE operations SET operation = ? WHERE name = ?", (state, row[0]))

        await self._call(lambda db: transaction(db, write))

    async def chunks(self, name: str) -> dict[int, KeptChunk]:
        """The finished chunks of an operation by index."""
        sql = "SELECT chunk, plan, metrics FROM operation_chunks WHERE name = ?"
        rows = await self._call(lambda db: db.execute(sql, (name,)).fetchall())
        return {int(chunk): KeptChunk(plan, _decode_metrics(text)) for chunk, plan, text in rows}

    async def chunk(self, name: str, index: int) -> KeptChunk:
        """One finished chunk of an operation; `NotFoundError` when it is not kept."""
        sql = "SELECT plan, metrics FROM operation_chunks WHERE name = ? AND chunk = ?"
        row = await self._call(lambda db: db.execute(sql, (name, index)).fetchone())
        if row is None:
            raise NotFoundError(f"operation {name!r} has no chunk {index}")
        return KeptChunk(row[0], _decode_metrics(row[1]))

    async def get(self, name: str) -> operations_pb2.Operation:
        """The stored operation; `NotFoundError` when there is none."""
        sql = "SELECT operation FROM operations WHERE name = ?"
        row = await self._call(lambda db: db.execute(sql, (name,)).fetchone())
        if row is None:
            raise NotFoundError(f"no operation named {name!r}")
        return operations_pb2.Operation.FromString(row[0])

    async def page(
        self, page_size: int, page_token: str = ""
    ) -> tuple[list[operations_pb2.Operation], str]:
        """Operations newest first, and the token of the next page ("" on the last one)."""
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after_ms, after_name = decode_page_token(page_token) if page_token else (None, "")
        rows = await self._call(
            lambda db: db.execute(_LIST, (after_ms, after_name, size + 1)).fetchall()
        )
        found = [operations_pb2.Operation.FromString(blob) for (_, blob) in rows[:size]]
        if len(rows) <= size:
            return found, ""
        last_ms = rows[size - 1][0]
        return found, encode_page_token(int(last_ms), found[-1].name)

    async def unfinished(self) -> list[Unfinished]:
        """Operations not done, oldest first: the work a restart resumes."""
        sql = "SELECT request, operation FROM operations WHERE done = 0 ORDER BY create_time_ms"
        rows = await self._call(lambda db: db.execute(sql).fetchall())
        return [Unfinished(req, operations_pb2.Operation.FromString(op)) for req, op in rows]

    async def delete(self, name: str) -> None:
        """Forget an operation and its chunks; `NotFoundError` when there is none."""

        def delete(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM operation_chunks WHERE name = ?", (name,))
            return int(db.execute("DELETE FROM operations WHERE name = ?", (name,)).rowcount)

        if await self._call(lambda db: transaction(db, delete)) == 0:
            raise NotFoundError(f"no operation named {name!r}")

    async def close(self) -> None:
        """Close the file and stop the worker thread."""

        def close(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._call(close)
        self._executor.shutdown(wait=True)

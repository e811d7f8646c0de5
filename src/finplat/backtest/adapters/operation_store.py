"""Long-running operations and their finished chunks of work, kept in the results database.

An operation is its request and its latest `google.longrunning.Operation` (metadata, then the
response or the error); each finished chunk of a sweep is a row of its own, written in the
same transaction as the progress it adds, so a crash loses at most the chunks still running.
One connection on one worker thread, as `ResultStore` (see `database`).
"""

import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass

# googleapis-common-protos has no py.typed marker (and types-protobuf owns `google`'s stubs).
from google.longrunning import operations_pb2  # type: ignore[import-untyped]
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    select,
    tuple_,
    update,
)

from finplat.backtest.adapters.database import KEY, Database, Location, upsert
from finplat.backtest.adapters.results_store import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_page_token,
    encode_page_token,
)
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.errors import NotFoundError

# Named and typed as in the SQLite files written before SQLAlchemy, as the result store's.
_METADATA = MetaData()
_OPERATIONS = Table(
    "operations",
    _METADATA,
    Column("name", KEY, primary_key=True),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("request", LargeBinary, nullable=False),
    Column("operation", LargeBinary, nullable=False),
)
Index("operations_newest", _OPERATIONS.c.create_time_ms.desc(), _OPERATIONS.c.name.desc())
_CHUNKS = Table(
    "operation_chunks",
    _METADATA,
    Column("name", KEY, primary_key=True),
    Column("chunk", Integer, primary_key=True, autoincrement=False),
    Column("plan", Text, nullable=False),
    Column("metrics", Text, nullable=False),
)

# Built once, as the result store's.
_ADD = insert(_OPERATIONS)
_SET_STATE = update(_OPERATIONS).where(_OPERATIONS.c.name == bindparam("key"))
_GET = select(_OPERATIONS.c.operation).where(_OPERATIONS.c.name == bindparam("key"))
_UNFINISHED = (
    select(_OPERATIONS.c.request, _OPERATIONS.c.operation)
    .where(_OPERATIONS.c.done.is_(False))
    .order_by(_OPERATIONS.c.create_time_ms, _OPERATIONS.c.name)
)
_DELETE = delete(_OPERATIONS).where(_OPERATIONS.c.name == bindparam("key"))
_CHUNKS_OF = select(_CHUNKS.c.chunk, _CHUNKS.c.plan, _CHUNKS.c.metrics).where(
    _CHUNKS.c.name == bindparam("key")
)
_CHUNK = select(_CHUNKS.c.plan, _CHUNKS.c.metrics).where(
    _CHUNKS.c.name == bindparam("key"), _CHUNKS.c.chunk == bindparam("chunk")
)
_DELETE_CHUNKS = delete(_CHUNKS).where(_CHUNKS.c.name == bindparam("key"))
_PAGE = (
    select(_OPERATIONS.c.create_time_ms, _OPERATIONS.c.operation)
    .order_by(_OPERATIONS.c.create_time_ms.desc(), _OPERATIONS.c.name.desc())
    .limit(bindparam("limit"))
)
_PAGE_AFTER = _PAGE.where(
    tuple_(_OPERATIONS.c.create_time_ms, _OPERATIONS.c.name)
    < tuple_(bindparam("after_ms", type_=BigInteger), bindparam("after_name", type_=KEY))
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

    def __init__(self, location: Location) -> None:
        self._db = Database(location, "operation store")

    @classmethod
    async def open(cls, location: Location) -> "OperationStore":
        """Create or open the database (a SQLite file, or PostgreSQL) and its tables."""
        store = cls(location)
        await store._db.open(_METADATA)
        return store

    async def add(
        self, operation: operations_pb2.Operation, create_time_ms: int, request: bytes
    ) -> None:
        """Store a new operation and the request it runs."""
        row = {
            "name": operation.name,
            "create_time_ms": create_time_ms,
            "done": operation.done,
            "request": request,
            "operation": operation.SerializeToString(),
        }
        await self._db.run(lambda db: db.execute(_ADD, row))

    async def save(self, operation: operations_pb2.Operation) -> None:
        """Replace the stored state of an operation: its progress, or its end, which also
        forgets its chunks (the response holds what they were for)."""
        name = operation.name
        state = {"key": name, "done": operation.done, "operation": operation.SerializeToString()}

        def write(db: Connection) -> None:
            db.execute(_SET_STATE, state)
            if operation.done:
                db.execute(_DELETE_CHUNKS, {"key": name})

        await self._db.run(write)

    async def add_chunk(
        self,
        operation: operations_pb2.Operation,
        chunk: int,
        plan: str,
        metrics: Sequence[Metrics],
    ) -> None:
        """Keep a finished chunk of ``plan`` and the progress it makes, in one transaction."""
        row = {"name": operation.name, "chunk": chunk, "plan": plan,
               "metrics": _encode_metrics(metrics)}  # fmt: skip
        state = {"key": operation.name, "operation": operation.SerializeToString()}

        def write(db: Connection) -> None:
            upsert(db, _CHUNKS, row)
            db.execute(_SET_STATE, state)

        await self._db.run(write)

    async def chunks(self, name: str) -> dict[int, KeptChunk]:
        """The finished chunks of an operation by index."""
        rows = await self._db.run(lambda db: db.execute(_CHUNKS_OF, {"key": name}).all())
        return {int(chunk): KeptChunk(plan, _decode_metrics(text)) for chunk, plan, text in rows}

    async def chunk(self, name: str, index: int) -> KeptChunk:
        """One finished chunk of an operation; `NotFoundError` when it is not kept."""
        params = {"key": name, "chunk": index}
        row = await self._db.run(lambda db: db.execute(_CHUNK, params).one_or_none())
        if row is None:
            raise NotFoundError(f"operation {name!r} has no chunk {index}")
        return KeptChunk(row.plan, _decode_metrics(row.metrics))

    async def get(self, name: str) -> operations_pb2.Operation:
        """The stored operation; `NotFoundError` when there is none."""
        blob = await self._db.run(lambda db: db.execute(_GET, {"key": name}).scalar_one_or_none())
        if blob is None:
            raise NotFoundError(f"no operation named {name!r}")
        return operations_pb2.Operation.FromString(blob)

    async def page(
        self, page_size: int, page_token: str = ""
    ) -> tuple[list[operations_pb2.Operation], str]:
        """Operations newest first, and the token of the next page ("" on the last one)."""
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        params: dict[str, object] = {"limit": size + 1}
        query = _PAGE
        if page_token:
            params["after_ms"], params["after_name"] = decode_page_token(page_token)
            query = _PAGE_AFTER
        rows = await self._db.run(lambda db: db.execute(query, params).all())
        found = [operations_pb2.Operation.FromString(blob) for (_, blob) in rows[:size]]
        if len(rows) <= size:
            return found, ""
        last_ms = rows[size - 1][0]
        return found, encode_page_token(int(last_ms), found[-1].name)

    async def unfinished(self) -> list[Unfinished]:
        """Operations not done, oldest first: the work a restart resumes."""
        rows = await self._db.run(lambda db: db.execute(_UNFINISHED).all())
        return [Unfinished(req, operations_pb2.Operation.FromString(op)) for req, op in rows]

    async def delete(self, name: str) -> None:
        """Forget an operation and its chunks; `NotFoundError` when there is none."""

        def forget(db: Connection) -> int:
            db.execute(_DELETE_CHUNKS, {"key": name})
            return db.execute(_DELETE, {"key": name}).rowcount

        if await self._db.run(forget) == 0:
            raise NotFoundError(f"no operation named {name!r}")

    async def close(self) -> None:
        """Close the database and stop the worker thread."""
        await self._db.close()

"""Long-running operations and their finished chunks of work, kept in the results database.

An operation is its request and its latest `google.longrunning.Operation` (metadata, then the
response or the error); each finished chunk of a sweep is a row of its own, written in the
same transaction as the progress it adds, so a crash loses at most the chunks still running.
One connection on one worker thread, as `ResultStore` (see `database`).

Each unfinished operation is leased to the instance that runs it: instances sharing a database
run each operation once, and a dead instance's operations go to a live one when its lease
expires. A lease is claimed by one INSERT ... ON CONFLICT DO UPDATE ... WHERE expired per
operation, which only one instance's statement can win; it is renewed by its owner; it is
dropped with the operation's end. Every write of a running operation (a chunk, its progress, its
end) first locks its lease row and goes ahead only while the row still names the writer, so an
instance that stalled past its lease writes nothing once another has taken the operation over
(`LeaseLostError`). Cancels asked of another instance are a flag on the lease, which its owner
reads when it renews. The times are the instances' clocks: they must agree to well within a lease.
"""

import functools
import json
from collections.abc import Collection, Sequence
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
    false,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.sql.dml import ReturningInsert

from finplat.backtest.adapters.database import KEY, Database, Location, dialect_insert, upsert
from finplat.backtest.adapters.results_store import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_page_token,
    encode_page_token,
)
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.errors import NotFoundError, StoreError

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
# A table of its own rather than columns of `operations`: `create_all` adds it to files written
# before leases, whose unfinished operations have none (the first instance to claim one takes it).
_LEASES = Table(
    "operation_leases",
    _METADATA,
    Column("name", KEY, primary_key=True),
    # Null: nobody has claimed it (a cancel was asked for before any instance did).
    Column("owner", Text),
    Column("lease_until_ms", BigInteger, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
)

# Built once, as the result store's.
_ADD = insert(_OPERATIONS)
_SET_STATE = update(_OPERATIONS).where(_OPERATIONS.c.name == bindparam("key"))
_GET = select(_OPERATIONS.c.operation).where(_OPERATIONS.c.name == bindparam("key"))
_UNFINISHED = select(_OPERATIONS.c.request, _OPERATIONS.c.operation).where(
    _OPERATIONS.c.name == bindparam("key"), _OPERATIONS.c.done.is_(False)
)
_CLAIMABLE = (
    select(_OPERATIONS.c.name)
    .select_from(_OPERATIONS.outerjoin(_LEASES, _LEASES.c.name == _OPERATIONS.c.name))
    .where(
        _OPERATIONS.c.done.is_(False),
        or_(_LEASES.c.name.is_(None), _LEASES.c.lease_until_ms < bindparam("now")),
    )
    .order_by(_OPERATIONS.c.create_time_ms, _OPERATIONS.c.name)
)
_DELETE = delete(_OPERATIONS).where(_OPERATIONS.c.name == bindparam("key"))
_ADD_LEASE = insert(_LEASES)
# Sets the owner it has: a lock on the row, which a claim waits for (see `_hold`).
_HOLD = (
    update(_LEASES)
    .where(_LEASES.c.name == bindparam("key"), _LEASES.c.owner == bindparam("holder"))
    .values(owner=_LEASES.c.owner)
)
_RENEW = (
    update(_LEASES)
    .where(
        _LEASES.c.owner == bindparam("holder"),
        _LEASES.c.name.in_(bindparam("names", expanding=True)),
    )
    .values(lease_until_ms=bindparam("until"))
    .returning(_LEASES.c.name)
)
_RELEASE = update(_LEASES).where(_LEASES.c.owner == bindparam("holder")).values(lease_until_ms=0)
_CANCELS = select(_LEASES.c.name).where(
    _LEASES.c.name.in_(bindparam("names", expanding=True)), _LEASES.c.cancel_requested.is_(True)
)
_DROP_LEASE = delete(_LEASES).where(_LEASES.c.name == bindparam("key"))
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
    """An operation to resume (a stop interrupted it, or its instance died): what it was asked
    and how far it got."""

    request: bytes
    operation: operations_pb2.Operation


class LeaseLostError(StoreError):
    """The operation is no longer the writer's: another instance took it over once the writer's
    lease expired, or it was deleted. Nothing was written."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"operation {name!r} is no longer this instance's to run")


@functools.cache
def _claim(dialect: str) -> ReturningInsert[tuple[str]]:
    # Nothing to insert once the operation has ended: an ended one is nobody's to run.
    unfinished = select(
        _OPERATIONS.c.name,
        bindparam("holder", type_=Text),
        bindparam("until", type_=BigInteger),
        false(),
    ).where(_OPERATIONS.c.name == bindparam("key"), _OPERATIONS.c.done.is_(False))
    claim = dialect_insert(dialect, _LEASES).from_select(
        ["name", "owner", "lease_until_ms", "cancel_requested"], unfinished
    )
    # Another's lease is taken only once expired. Of two instances claiming at once, the
    # second's condition sees the first's new lease (PostgreSQL evaluates it on the row as the
    # first committed it, SQLite has one writer at a time) and it takes nothing. A cancel asked
    # for stays asked for.
    return claim.on_conflict_do_update(
        index_elements=[_LEASES.c.name],
        set_={"owner": claim.excluded.owner, "lease_until_ms": claim.excluded.lease_until_ms},
        where=_LEASES.c.lease_until_ms < bindparam("now"),
    ).returning(_LEASES.c.name)


@functools.cache
def _request_cancel(dialect: str) -> ReturningInsert[tuple[str]]:
    # A lease of nobody's when none was claimed yet, so whoever claims it finds the request.
    unfinished = select(_OPERATIONS.c.name, null(), literal(0, BigInteger), true()).where(
        _OPERATIONS.c.name == bindparam("key"), _OPERATIONS.c.done.is_(False)
    )
    request = dialect_insert(dialect, _LEASES).from_select(
        ["name", "owner", "lease_until_ms", "cancel_requested"], unfinished
    )
    return request.on_conflict_do_update(
        index_elements=[_LEASES.c.name], set_={"cancel_requested": true()}
    ).returning(_LEASES.c.name)


def _hold(db: Connection, name: str, owner: str) -> None:
    """Lock the operation's lease row until the transaction ends if ``owner`` holds it, else
    raise `LeaseLostError` (and the transaction writes nothing). A claim of the row waits for
    the lock: what is written under it is written before any other instance takes over."""
    if db.execute(_HOLD, {"key": name, "holder": owner}).rowcount == 0:
        raise LeaseLostError(name)


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
        self,
        operation: operations_pb2.Operation,
        create_time_ms: int,
        request: bytes,
        owner: str,
        lease_ms: int,
    ) -> None:
        """Store a new operation and the request it runs, leased to ``owner`` (the instance
        that runs it) for ``lease_ms`` from its creation."""
        row = {
            "name": operation.name,
            "create_time_ms": create_time_ms,
            "done": operation.done,
            "request": request,
            "operation": operation.SerializeToString(),
        }
        lease = {
            "name": operation.name,
            "owner": owner,
            "lease_until_ms": create_time_ms + lease_ms,
            "cancel_requested": False,
        }

        def write(db: Connection) -> None:
            db.execute(_ADD, row)
            db.execute(_ADD_LEASE, lease)

        await self._db.run(write)

    async def save(self, operation: operations_pb2.Operation, owner: str) -> None:
        """Replace the stored state of an operation ``owner`` runs: its progress, or its end,
        which also forgets its chunks (the response holds what they were for) and its lease.
        `LeaseLostError` when it is no longer ``owner``'s."""
        name = operation.name
        state = {"key": name, "done": operation.done, "operation": operation.SerializeToString()}

        def write(db: Connection) -> None:
            _hold(db, name, owner)
            db.execute(_SET_STATE, state)
            if operation.done:
                db.execute(_DELETE_CHUNKS, {"key": name})
                db.execute(_DROP_LEASE, {"key": name})

        await self._db.run(write)

    async def add_chunk(
        self,
        operation: operations_pb2.Operation,
        chunk: int,
        plan: str,
        metrics: Sequence[Metrics],
        owner: str,
    ) -> None:
        """Keep a finished chunk of ``plan`` and the progress it makes, in one transaction, for
        ``owner``; `LeaseLostError` when the operation is no longer ``owner``'s."""
        row = {"name": operation.name, "chunk": chunk, "plan": plan,
               "metrics": _encode_metrics(metrics)}  # fmt: skip
        state = {"key": operation.name, "operation": operation.SerializeToString()}

        def write(db: Connection) -> None:
            _hold(db, operation.name, owner)
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

    async def claim_unfinished(self, owner: str, now_ms: int, lease_ms: int) -> list[Unfinished]:
        """The unfinished operations no instance holds (never leased, or the lease expired
        before ``now_ms``), oldest first, now leased to ``owner`` for ``lease_ms``: what a
        start resumes, and what a live instance takes over from a dead one. Each is claimed
        by a statement of its own, which only one instance's can win."""
        params = {"holder": owner, "until": now_ms + lease_ms, "now": now_ms}
        names = await self._db.run(lambda db: db.execute(_CLAIMABLE, params).scalars().all())

        def claim(db: Connection, name: str) -> Unfinished | None:
            # The claim first: on SQLite a transaction that reads before it writes fails when
            # another connection wrote in between.
            if db.execute(_claim(db.dialect.name), {**params, "key": name}).first() is None:
                return None  # another instance's since it was read, or ended
            # None if it ended while the claim ran (its lease is then never claimed again).
            row = db.execute(_UNFINISHED, {"key": name}).one_or_none()
            return (
                None
                if row is None
                else Unfinished(row.request, operations_pb2.Operation.FromString(row.operation))
            )

        claimed = []
        for name in names:
            # One transaction each: a lease row stays locked only while its own claim runs.
            kept = await self._db.run(functools.partial(claim, name=name))
            if kept is not None:
                claimed.append(kept)
        return claimed

    async def renew(
        self, owner: str, names: Collection[str], now_ms: int, lease_ms: int
    ) -> set[str]:
        """Extend ``owner``'s leases of ``names`` to ``now_ms + lease_ms``; the names it still
        holds (the others were taken over, deleted, or ended)."""
        params = {"holder": owner, "names": list(names), "until": now_ms + lease_ms}
        return set(await self._db.run(lambda db: db.execute(_RENEW, params).scalars().all()))

    async def release(self, owner: str) -> None:
        """Let go of ``owner``'s leases, so that the next claim takes their operations at once
        (at a stop, or at a start from what the same owner held before it)."""
        await self._db.run(lambda db: db.execute(_RELEASE, {"holder": owner}))

    async def request_cancel(self, name: str) -> bool:
        """Ask the instance running the operation to cancel it (it reads this when it renews
        its lease); False when there is no unfinished operation of that name."""

        def request(db: Connection) -> bool:
            return db.execute(_request_cancel(db.dialect.name), {"key": name}).first() is not None

        return await self._db.run(request)

    async def cancel_requested(self, names: Collection[str]) -> set[str]:
        """Those of ``names`` whose cancel was asked for (`request_cancel`)."""
        params = {"names": list(names)}
        return set(await self._db.run(lambda db: db.execute(_CANCELS, params).scalars().all()))

    async def delete(self, name: str) -> None:
        """Forget an operation, its chunks and its lease (an instance still running it finds
        the lease gone, and stops); `NotFoundError` when there is none."""

        def forget(db: Connection) -> int:
            db.execute(_DELETE_CHUNKS, {"key": name})
            db.execute(_DROP_LEASE, {"key": name})
            return db.execute(_DELETE, {"key": name}).rowcount

        if await self._db.run(forget) == 0:
            raise NotFoundError(f"no operation named {name!r}")

    async def close(self) -> None:
        """Close the database and stop the worker thread."""
        await self._db.close()

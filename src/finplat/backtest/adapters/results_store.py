"""Stored backtests, sweeps and walk-forwards: the proto bytes plus the columns we filter and
sort by; a sweep's whole table (every combination, not only the ranked results its proto
holds) as pieces of rows in Arrow's IPC format, zstd-compressed, read back one at a time.

In the service's SQLite file, or in PostgreSQL when several instances share their results
(see `database`). One connection on one worker thread: every call is queued to it, so the
event loop never blocks on the database (the operation store has its own connection to the
same database). Listing reads a summary blob (no trades, no equity curve) per row.
"""

import asyncio
import base64
import binascii
import functools

import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    select,
    tuple_,
)

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.database import KEY, Database, Location, upsert
from finplat.backtest.errors import NotFoundError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

# Named and typed as in the SQLite files written before SQLAlchemy, which still open:
# `create_all` leaves tables that exist as they are.
_METADATA = MetaData()
_BACKTESTS = Table(
    "backtests",
    _METADATA,
    Column("id", KEY, primary_key=True),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("strategy", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("summary", LargeBinary, nullable=False),
    Column("full", LargeBinary, nullable=False),
)
Index("backtests_newest", _BACKTESTS.c.create_time_ms.desc(), _BACKTESTS.c.id.desc())
Index(
    "backtests_by_strategy",
    _BACKTESTS.c.strategy,
    _BACKTESTS.c.create_time_ms.desc(),
    _BACKTESTS.c.id.desc(),
)
Index(
    "backtests_by_symbol",
    _BACKTESTS.c.symbol,
    _BACKTESTS.c.create_time_ms.desc(),
    _BACKTESTS.c.id.desc(),
)
_SWEEPS = Table(
    "sweeps",
    _METADATA,
    Column("id", KEY, primary_key=True),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("strategy", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("full", LargeBinary, nullable=False),
)
_SWEEP_ROWS = Table(
    "sweep_rows",
    _METADATA,
    Column("sweep_id", KEY, primary_key=True),
    Column("piece", Integer, primary_key=True, autoincrement=False),
    Column("rows", LargeBinary, nullable=False),
)
_WALK_FORWARDS = Table(
    "walk_forwards",
    _METADATA,
    Column("id", KEY, primary_key=True),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("strategy", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("full", LargeBinary, nullable=False),
)

# Built once: SQLAlchemy then finds each one's SQL in its cache without rebuilding it per call.
_ADD_BACKTEST = insert(_BACKTESTS)
_GET_BACKTEST = select(_BACKTESTS.c.full).where(_BACKTESTS.c.id == bindparam("id"))
_GET_SWEEP = select(_SWEEPS.c.full).where(_SWEEPS.c.id == bindparam("id"))
_GET_WALK_FORWARD = select(_WALK_FORWARDS.c.full).where(_WALK_FORWARDS.c.id == bindparam("id"))
_ADD_ROWS = insert(_SWEEP_ROWS)
_DELETE_ROWS = delete(_SWEEP_ROWS).where(_SWEEP_ROWS.c.sweep_id == bindparam("id"))
_ROW_PIECES = (
    select(_SWEEP_ROWS.c.piece)
    .where(_SWEEP_ROWS.c.sweep_id == bindparam("id"))
    .order_by(_SWEEP_ROWS.c.piece)
)
_GET_ROWS = select(_SWEEP_ROWS.c.rows).where(
    _SWEEP_ROWS.c.sweep_id == bindparam("id"), _SWEEP_ROWS.c.piece == bindparam("piece")
)


@functools.cache
def _list_query(by_strategy: bool, by_symbol: bool, after: bool) -> Select[bytes]:
    """Newest summaries first, with only the filters asked for (each shape has its index)."""
    table = _BACKTESTS
    query = (
        select(table.c.summary)
        .order_by(table.c.create_time_ms.desc(), table.c.id.desc())
        .limit(bindparam("limit"))
    )
    if by_strategy:
        query = query.where(table.c.strategy == bindparam("strategy"))
    if by_symbol:
        query = query.where(table.c.symbol == bindparam("symbol"))
    if after:
        position = tuple_(bindparam("after_ms", type_=BigInteger), bindparam("after_id", type_=KEY))
        query = query.where(tuple_(table.c.create_time_ms, table.c.id) < position)
    return query


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

    def __init__(self, location: Location) -> None:
        self._db = Database(location, "results store")

    @classmethod
    async def open(cls, location: Location) -> "ResultStore":
        """Create or open the database (a SQLite file, or PostgreSQL) and its tables."""
        store = cls(location)
        await store._db.open(_METADATA)
        return store

    async def add_backtest(self, backtest: backtest_pb2.Backtest) -> None:
        """Store a run; its id must be new."""
        row = {
            "id": backtest.id,
            "create_time_ms": backtest.create_time.ToMilliseconds(),
            "strategy": backtest.strategy,
            "symbol": backtest.data.symbol,
            "summary": _summary(backtest),
            "full": backtest.SerializeToString(),
        }
        await self._db.run(lambda db: db.execute(_ADD_BACKTEST, row))

    async def get_backtest(self, run_id: str) -> backtest_pb2.Backtest:
        """The stored run; `NotFoundError` when there is none."""
        blob = await self._db.run(lambda db: _blob(db, _GET_BACKTEST, run_id))
        if blob is None:
            raise NotFoundError(f"no backtest with id {run_id!r}")
        return backtest_pb2.Backtest.FromString(blob)

    async def list_backtests(
        self, page_size: int, page_token: str = "", strategy: str = "", symbol: str = ""
    ) -> tuple[list[backtest_pb2.Backtest], str]:
        """Summaries newest first, and the token of the next page ("" on the last one)."""
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after_ms, after_id = decode_page_token(page_token) if page_token else (None, "")
        query = _list_query(bool(strategy), bool(symbol), after_ms is not None)
        params = {"strategy": strategy, "symbol": symbol, "after_ms": after_ms,
                  "after_id": after_id, "limit": size + 1}  # fmt: skip
        rows = await self._db.run(lambda db: db.execute(query, params).scalars().all())
        runs = [backtest_pb2.Backtest.FromString(blob) for blob in rows[:size]]
        more = len(rows) > size
        last = runs[-1] if runs else None
        token = (
            encode_page_token(last.create_time.ToMilliseconds(), last.id) if more and last else ""
        )
        return runs, token

    async def add_sweep(self, sweep: backtest_pb2.Sweep) -> None:
        """Store a sweep (again, if its id is taken: the same sweep, resumed)."""
        row = {
            "id": sweep.id,
            "create_time_ms": sweep.create_time.ToMilliseconds(),
            "strategy": sweep.strategy,
            "symbol": sweep.data.symbol,
            "full": sweep.SerializeToString(),
        }
        # An upsert: an operation stopped between storing its sweep and its end stores it
        # again when resumed, the same sweep under the same id.
        await self._db.run(lambda db: upsert(db, _SWEEPS, row))

    async def get_sweep(self, sweep_id: str) -> backtest_pb2.Sweep:
        """The stored sweep; `NotFoundError` when there is none."""
        blob = await self._db.run(lambda db: _blob(db, _GET_SWEEP, sweep_id))
        if blob is None:
            raise NotFoundError(f"no sweep with id {sweep_id!r}")
        return backtest_pb2.Sweep.FromString(blob)

    async def add_sweep_rows(self, sweep_id: str, piece: int, rows: pa.Table) -> None:
        """Store a piece of a sweep's whole table. Pieces are stored in order from 0, and
        piece 0 replaces whatever the sweep had (a resumed sweep stores its table again)."""
        data = await asyncio.to_thread(_ipc_bytes, rows)

        def write(db: Connection) -> None:
            if piece == 0:
                db.execute(_DELETE_ROWS, {"id": sweep_id})
            db.execute(_ADD_ROWS, {"sweep_id": sweep_id, "piece": piece, "rows": data})

        # One transaction: the old pieces never outlive a new piece 0.
        await self._db.run(write)

    async def sweep_row_pieces(self, sweep_id: str) -> list[int]:
        """The pieces of a sweep's whole table, in order (none for a sweep stored without)."""
        params = {"id": sweep_id}
        pieces = await self._db.run(lambda db: db.execute(_ROW_PIECES, params).scalars().all())
        return [int(piece) for piece in pieces]

    async def get_sweep_rows(self, sweep_id: str, piece: int) -> pa.Table:
        """One piece of a sweep's whole table; `NotFoundError` when there is none."""
        params = {"id": sweep_id, "piece": piece}
        data = await self._db.run(lambda db: db.execute(_GET_ROWS, params).scalar_one_or_none())
        if data is None:
            raise NotFoundError(f"sweep {sweep_id!r} has no piece {piece} of its table")
        return await asyncio.to_thread(_ipc_table, data)

    async def add_walk_forward(self, walk_forward: backtest_service_pb2.WalkForward) -> None:
        """Store a walk-forward (again, if its id is taken, as `add_sweep`)."""
        row = {
            "id": walk_forward.id,
            "create_time_ms": walk_forward.create_time.ToMilliseconds(),
            "strategy": walk_forward.strategy,
            "symbol": walk_forward.data.symbol,
            "full": walk_forward.SerializeToString(),
        }
        await self._db.run(lambda db: upsert(db, _WALK_FORWARDS, row))

    async def get_walk_forward(self, walk_forward_id: str) -> backtest_service_pb2.WalkForward:
        """The stored walk-forward; `NotFoundError` when there is none."""
        blob = await self._db.run(lambda db: _blob(db, _GET_WALK_FORWARD, walk_forward_id))
        if blob is None:
            raise NotFoundError(f"no walk-forward with id {walk_forward_id!r}")
        return backtest_service_pb2.WalkForward.FromString(blob)

    async def close(self) -> None:
        """Close the database and stop the worker thread."""
        await self._db.close()


def _blob(db: Connection, query: Select[bytes], key: str) -> bytes | None:
    """The one blob ``query`` selects for the id ``key``, if there is one."""
    blob: bytes | None = db.execute(query, {"id": key}).scalar_one_or_none()
    return blob

"""The consumer group's durable state, per partition: statistics, de-duplication window and
next offset, in a SQLite file (one instance, the default) or in PostgreSQL, shared by every
instance of the group (`FINPLAT_BACKTEST_DATABASE_URL`).

Why a database rather than a compacted changelog topic (Kafka Streams' way): the statistics are
already written in one transaction with the offsets they count up to, so whoever owns a
partition next continues exactly where the last owner's last transaction left it, and
PostgreSQL gives that transaction across machines. The de-duplication window is written as it
changes (the keys a batch added, the oldest kept) rather than whole per batch, and GetStats
reads the partitions other instances own with one query.

Ownership is fenced: claiming a partition raises its epoch, and a save only writes rows still
at the epoch it claimed. An instance the group has given up on (a long pause, a lost session)
that wakes and saves finds its partitions taken (`PartitionsLostError`) and writes nothing,
rather than overwrite its successor's state with an older one.
"""

import functools
import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    delete,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from finplat.backtest.adapters.database import (
    KEY,
    Location,
    create_tables,
    describe,
    make_engine,
)
from finplat.backtest.domain.dedup import DedupChanges
from finplat.backtest.errors import StoreError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Where versions before per-partition state kept their one state (with tables seen, offsets).
_SINGLE_STATE_TABLE = "stats"
_METADATA = MetaData()
_PARTITIONS = Table(
    "consumer_partitions",
    _METADATA,
    Column("group_id", KEY, primary_key=True),
    Column("topic", KEY, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
    # Null until the first batch of the partition is saved.
    Column("next_offset", BigInteger),
    Column("stats", Text),
)
_SEEN = Table(
    "consumer_seen",
    _METADATA,
    Column("group_id", KEY, primary_key=True),
    Column("topic", KEY, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("key", Text, nullable=False),
    # Stored in key order (SQLite's WITHOUT ROWID): each batch's keys append to the end of
    # their partition's run, instead of going to a rowid table and again to its key's index.
    sqlite_with_rowid=False,
)


class PartitionsLostError(StoreError):
    """Another consumer has claimed these partitions since this one did."""

    def __init__(self, partitions: Collection[int]) -> None:
        self.partitions = sorted(partitions)
        super().__init__(f"partitions {self.partitions} were claimed by another consumer")


@dataclass(frozen=True, slots=True)
class SavedPartition:
    """What the last owner of a partition saved: statistics (None before its first batch),
    the window's keys, the next offset to read (None: from the beginning)."""

    stats: dict[str, Any] | None
    seen: list[tuple[int, str]]
    next_offset: int | None


@dataclass(frozen=True, slots=True)
class PartitionChanges:
    """One batch's outcome for one partition."""

    stats: Mapping[str, Any]
    seen: DedupChanges
    next_offset: int


class ConsumerStateStore:
    """The state of one group on one topic; claims and saves come from the consumer's thread,
    `others` from readers' threads (each call takes a pooled connection of its own)."""

    def __init__(self, location: Location, group_id: str, topic: str) -> None:
        self._location = location
        self._where = {"group_id": group_id, "topic": topic}
        self._epochs: dict[int, int] = {}
        self._engine: Engine = self._guarded(lambda: _open(location))

    def claim(self, partitions: Collection[int]) -> dict[int, SavedPartition]:
        """Take ownership of `partitions` (fencing their previous owner) and read their state."""

        def work(connection: Connection) -> dict[int, SavedPartition]:
            epochs = {p: _raise_epoch(connection, self._where, p) for p in sorted(partitions)}
            saved = _read(connection, self._where, epochs)
            self._epochs.update(epochs)
            return saved

        return self._transaction(work)

    def load(self, partitions: Collection[int]) -> dict[int, SavedPartition]:
        """The saved state of partitions this store has claimed (after a failed batch)."""
        owned = {p: self._epochs[p] for p in partitions if p in self._epochs}
        return self._transaction(lambda connection: _read(connection, self._where, owned))

    def release(self, partitions: Collection[int]) -> None:
        """Forget partitions the group has taken away (their state is saved)."""
        for partition in partitions:
            self._epochs.pop(partition, None)

    def save(self, changes: Mapping[int, PartitionChanges]) -> None:
        """One batch's outcome, all partitions in one transaction: all of it or none of it."""

        def work(connection: Connection) -> None:
            lost = [p for p, change in changes.items() if not self._write(connection, p, change)]
            if lost:
                # Raised inside the transaction: it rolls back what was written of the others.
                raise PartitionsLostError(lost)

        try:
            self._transaction(work)
        except PartitionsLostError as exc:
            self.release(exc.partitions)
            raise

    def _write(self, connection: Connection, partition: int, change: PartitionChanges) -> bool:
        epoch = self._epochs.get(partition)
        if epoch is None:
            return False
        key = {**self._where, "partition": partition}
        moved = connection.execute(
            update(_PARTITIONS)
            .where(_matches(_PARTITIONS, key), _PARTITIONS.c.epoch == epoch)
            .values(
                next_offset=change.next_offset,
                stats=json.dumps(change.stats, separators=(",", ":")),
            )
        )
        if moved.rowcount != 1:
            return False
        if change.seen.added:
            # Straight to the driver's executemany: up to a batch of keys per partition, where
            # SQLAlchemy's per-row parameter handling cost 9 us a key, more than counting it.
            group, topic = self._where["group_id"], self._where["topic"]
            connection.exec_driver_sql(
                _insert_seen(connection.dialect.paramstyle),
                [(group, topic, partition, seq, k) for seq, k in change.seen.added],
            )
        connection.execute(
            delete(_SEEN).where(_matches(_SEEN, key), _SEEN.c.seq < change.seen.keep_from_seq)
        )
        return True

    def others(self, owned: Collection[int]) -> dict[int, dict[str, Any]]:
        """Saved statistics of the group's partitions other than `owned`: those other
        instances hold, or nobody holds right now."""

        def work(connection: Connection) -> dict[int, dict[str, Any]]:
            rows = connection.execute(
                select(_PARTITIONS.c.partition, _PARTITIONS.c.stats).where(
                    _matches(_PARTITIONS, self._where), _PARTITIONS.c.stats.is_not(None)
                )
            )
            return {p: json.loads(text) for p, text in rows if p not in owned}

        return self._transaction(work)

    def close(self) -> None:
        """Close the connections (SQLite checkpoints its WAL on the last close)."""
        self._engine.dispose()

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self._engine.begin() as connection:
                return work(connection)

        return self._guarded(run)

    def _guarded(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except SQLAlchemyError as exc:
            raise StoreError(f"consumer state {describe(self._location)}: {exc}") from exc


def _open(location: Location) -> Engine:
    # NORMAL on SQLite: a crash of the process loses nothing committed; a power loss may roll
    # back the newest batches, whole, with their offsets, which are then read again.
    opened = make_engine(location, synchronous="NORMAL", pool_size=2)
    try:
        create_tables(opened, _METADATA)
        with opened.connect() as connection:
            if inspect(connection).has_table(_SINGLE_STATE_TABLE):
                logger.warning(
                    "%s holds the state of an earlier version (one state for the whole topic, "
                    "not per partition), which is not read: the statistics are counted again "
                    "from what the topic still holds",
                    describe(location),
                )
    except BaseException:
        opened.dispose()
        raise
    return opened


@functools.cache
def _insert_seen(paramstyle: str) -> str:
    marker = "?" if paramstyle == "qmark" else "%s"  # sqlite3's, psycopg's
    columns = [column.name for column in _SEEN.columns]
    return (
        f"INSERT INTO {_SEEN.name} ({', '.join(columns)})"
        f" VALUES ({', '.join([marker] * len(columns))})"
    )


def _matches(table: Table, values: Mapping[str, Any]) -> ColumnElement[bool]:
    return and_(*(table.c[name] == value for name, value in values.items()))


def _raise_epoch(connection: Connection, where: Mapping[str, Any], partition: int) -> int:
    """The partition's epoch plus one (1 for a partition never claimed)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_PARTITIONS).values(**where, partition=partition, epoch=1)
    statement = statement.on_conflict_do_update(
        index_elements=_PARTITIONS.primary_key.columns,
        set_={"epoch": _PARTITIONS.c.epoch + 1},
    ).returning(_PARTITIONS.c.epoch)
    epoch: int = connection.execute(statement).scalar_one()
    return epoch


def _read(
    connection: Connection, where: Mapping[str, Any], partitions: Mapping[int, int]
) -> dict[int, SavedPartition]:
    saved = {}
    for partition in partitions:
        key = {**where, "partition": partition}
        row = connection.execute(
            select(_PARTITIONS.c.stats, _PARTITIONS.c.next_offset).where(_matches(_PARTITIONS, key))
        ).one()
        seen = connection.execute(
            select(_SEEN.c.seq, _SEEN.c.key).where(_matches(_SEEN, key)).order_by(_SEEN.c.seq)
        )
        saved[partition] = SavedPartition(
            json.loads(row.stats) if row.stats is not None else None,
            [(int(seq), str(k)) for seq, k in seen],
            row.next_offset,
        )
    return saved

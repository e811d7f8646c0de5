"""The consumer group's durable state, per partition: statistics, de-duplication window and
next offset, in a SQLite file (one instance, the default) or in PostgreSQL, shared by every
instance of the group (`FINPLAT_BACKTEST_DATABASE_URL`).

Why a database rather than a compacted changelog topic (Kafka Streams' way): the statistics are
already written in one transaction with the offsets they count up to, so whoever owns a
partition next continues exactly where the last owner's last transaction left it, and
PostgreSQL gives that transaction across machines. The de-duplication window is written as it
changes rather than whole per batch: one row per batch with the keys it added, deleted once
all of them have fallen out of the window. GetStats reads the partitions other instances own
with one query.

Ownership is fenced: claiming a partition raises its epoch, and a save only writes rows still
at the epoch it claimed. An instance the group has given up on (a long pause, a lost session)
that wakes and saves finds its partitions taken (`PartitionsLostError`) and writes nothing,
rather than overwrite its successor's state with an older one.
"""

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
    bindparam,
    delete,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from finplat.backtest.adapters.database import (
    KEY,
    Location,
    create_tables,
    describe,
    dialect_insert,
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
_WINDOW = Table(
    "consumer_window",
    _METADATA,
    Column("group_id", KEY, primary_key=True),
    Column("topic", KEY, primary_key=True),
    Column("partition", Integer, primary_key=True),
    # The batch's keys are numbered first_seq, first_seq + 1, ... up to next_seq (excluded).
    Column("first_seq", BigInteger, primary_key=True),
    Column("next_seq", BigInteger, nullable=False),
    # A JSON array. One row per batch rather than one per key: a batch's keys cost one
    # json.dumps and one row instead of a tuple and an index entry each, and the per-key rows
    # took about a sixth of the consumer's time (issue #18).
    # A rowid table on SQLite, not WITHOUT ROWID (which suits rows of a few hundred bytes): a
    # row holds a batch's keys, tens of kilobytes, and a save took twice as long without rowid.
    Column("batch_keys", Text, nullable=False),
)
# Where the version before kept the window, one row per key. Not created; a partition's rows
# are moved into `_WINDOW` when it is claimed. An instance of that version still running in
# the group (a rolling upgrade) does not read the moved rows: it forgets the window, as when
# its state is lost, and may count again a duplicate the window would have caught.
_PER_KEY_WINDOW = Table(
    "consumer_seen",
    MetaData(),
    Column("group_id", KEY, primary_key=True),
    Column("topic", KEY, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("key", Text, nullable=False),
)


# Statements built once: a save runs them for each partition of each batch, GetStats as often
# as it is asked, and building and hashing a statement again each time took longer than SQLite
# takes to run it.
def _is_the(table: Table, *names: str) -> list[ColumnElement[bool]]:
    # Named apart from the columns: an UPDATE keeps a column's name for its SET parameter.
    return [table.c[name] == bindparam(f"the_{name}") for name in names]


def _is_the_partition(table: Table) -> list[ColumnElement[bool]]:
    return _is_the(table, "group_id", "topic", "partition")


def _the(values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of `_is_the` for these column values."""
    return {f"the_{name}": value for name, value in values.items()}


_SAVE_STATS = (
    update(_PARTITIONS)
    .where(*_is_the_partition(_PARTITIONS), _PARTITIONS.c.epoch == bindparam("held_epoch"))
    .values(next_offset=bindparam("offset"), stats=bindparam("saved"))
)
# The statistics of the group's partitions, for those other instances own.
_SAVED_STATS = select(_PARTITIONS.c.partition, _PARTITIONS.c.stats).where(
    *_is_the(_PARTITIONS, "group_id", "topic"), _PARTITIONS.c.stats.is_not(None)
)
# A batch's row is kept until the last of its keys has fallen out of the window.
_FORGET_WINDOW_ROWS = delete(_WINDOW).where(
    *_is_the_partition(_WINDOW), _WINDOW.c.next_seq <= bindparam("keep_from")
)


class PartitionsLostError(StoreError):
    """Another consumer has claimed these partitions since this one did."""

    def __init__(self, partitions: Collection[int]) -> None:
        self.partitions = sorted(partitions)
        super().__init__(f"partitions {self.partitions} were claimed by another consumer")


@dataclass(frozen=True, slots=True)
class SavedPartition:
    """What the last owner of a partition saved: statistics (None before its first batch),
    the window's keys (with some older ones, see `DedupWindow.restore`), the next offset to
    read (None: from the beginning)."""

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
        self._per_key_window = self._guarded(lambda: _has_table(self._engine, _PER_KEY_WINDOW))

    def claim(self, partitions: Collection[int]) -> dict[int, SavedPartition]:
        """Take ownership of `partitions` (fencing their previous owner) and read their state."""

        def work(connection: Connection) -> dict[int, SavedPartition]:
            epochs = {p: _raise_epoch(connection, self._where, p) for p in sorted(partitions)}
            if self._per_key_window:
                for partition in epochs:
                    _move_per_key_rows(connection, {**self._where, "partition": partition})
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
        the = _the(key)
        stats = json.dumps(change.stats, separators=(",", ":"))
        moved = connection.execute(
            _SAVE_STATS, {**the, "held_epoch": epoch, "offset": change.next_offset, "saved": stats}
        )
        if moved.rowcount != 1:
            return False
        seen = change.seen
        if seen.added:
            connection.execute(_WINDOW.insert(), _window_row(key, seen.first_seq, seen.added))
        connection.execute(_FORGET_WINDOW_ROWS, {**the, "keep_from": seen.keep_from_seq})
        return True

    def others(self, owned: Collection[int]) -> dict[int, dict[str, Any]]:
        """Saved statistics of the group's partitions other than `owned`: those other
        instances hold, or nobody holds right now."""

        def work(connection: Connection) -> dict[int, dict[str, Any]]:
            rows = connection.execute(_SAVED_STATS, _the(self._where))
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


def _has_table(engine: Engine, table: Table) -> bool:
    with engine.connect() as connection:
        return inspect(connection).has_table(table.name)


def _window_row(key: Mapping[str, Any], first_seq: int, keys: list[str]) -> dict[str, Any]:
    return {
        **key,
        "first_seq": first_seq,
        "next_seq": first_seq + len(keys),
        "batch_keys": json.dumps(keys),
    }


def _move_per_key_rows(connection: Connection, key: Mapping[str, Any]) -> None:
    """The partition's window as the version before kept it, moved into `_WINDOW`."""
    rows = connection.execute(
        select(_PER_KEY_WINDOW.c.seq, _PER_KEY_WINDOW.c.key)
        .where(*_is_the_partition(_PER_KEY_WINDOW))
        .order_by(_PER_KEY_WINDOW.c.seq),
        _the(key),
    )
    runs: list[tuple[int, list[str]]] = []
    for seq, k in rows:
        if runs and runs[-1][0] + len(runs[-1][1]) == seq:
            runs[-1][1].append(k)
        else:
            runs.append((seq, [k]))
    if runs:
        # Only a row an instance of this version wrote meanwhile can be there (a rolling
        # upgrade, the version before writing on after this one): the one there is kept.
        connection.execute(
            dialect_insert(connection.dialect.name, _WINDOW).on_conflict_do_nothing(),
            [_window_row(key, first, keys) for first, keys in runs],
        )
        connection.execute(
            delete(_PER_KEY_WINDOW).where(*_is_the_partition(_PER_KEY_WINDOW)), _the(key)
        )


def _raise_epoch(connection: Connection, where: Mapping[str, Any], partition: int) -> int:
    """The partition's epoch plus one (1 for a partition never claimed)."""
    insert = dialect_insert(connection.dialect.name, _PARTITIONS).values(
        **where, partition=partition, epoch=1
    )
    statement = insert.on_conflict_do_update(
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
        the = _the({**where, "partition": partition})
        row = connection.execute(
            select(_PARTITIONS.c.stats, _PARTITIONS.c.next_offset).where(
                *_is_the_partition(_PARTITIONS)
            ),
            the,
        ).one()
        runs = connection.execute(
            select(_WINDOW.c.first_seq, _WINDOW.c.batch_keys)
            .where(*_is_the_partition(_WINDOW))
            .order_by(_WINDOW.c.first_seq),
            the,
        )
        saved[partition] = SavedPartition(
            json.loads(row.stats) if row.stats is not None else None,
            [(seq, k) for first, keys in runs for seq, k in enumerate(json.loads(keys), first)],
            row.next_offset,
        )
    return saved

"""The consumer's durable state in SQLite: statistics, de-duplication window, next offsets.

All three are written in one transaction per processed batch, so after any crash the stored
offsets point exactly after the messages the stored statistics counted: restarting from them
neither loses nor double-counts. WAL with synchronous=NORMAL survives a process crash; a power
loss may roll back the newest transactions, but atomically, so state and offsets still agree.
"""

import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finplat.backtest.adapters.sqlite import connect
from finplat.backtest.domain.dedup import DedupChanges
from finplat.backtest.errors import StoreError

logger = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS stats (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS seen (seq INTEGER PRIMARY KEY, key TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS offsets (topic TEXT NOT NULL, partition INTEGER NOT NULL,"
    " next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition))",
)

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class SavedState:
    """What a previous run left: statistics (None on first start), seen keys, next offsets."""

    stats: dict[str, Any] | None
    seen: list[tuple[int, str]]
    offsets: dict[TopicPartitionKey, int]


class ConsumerStateStore:
    """One SQLite file, used by the consumer's thread only."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db = connect(path)
        try:
            for statement in _SCHEMA:
                self._db.execute(statement)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create consumer state in {path}: {exc}") from exc

    def load(self) -> SavedState:
        """Everything the last committed transaction wrote."""
        try:
            row = self._db.execute("SELECT state FROM stats WHERE id = 1").fetchone()
            seen = self._db.execute("SELECT seq, key FROM seen ORDER BY seq").fetchall()
            offsets = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
            stored = {(topic, partition): offset for topic, partition, offset in offsets}
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read consumer state from {self._path}: {exc}") from exc
        stats = json.loads(row[0]) if row else None
        return SavedState(stats, [(int(seq), str(key)) for seq, key in seen], stored)

    def save(
        self,
        stats: Mapping[str, Any],
        seen: DedupChanges,
        offsets: Mapping[TopicPartitionKey, int],
    ) -> None:
        """Write one batch's outcome atomically: all of it or, on error, none of it."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO stats (id, state) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                    (json.dumps(stats, separators=(",", ":")),),
                )
                self._db.executemany("INSERT INTO seen (seq, key) VALUES (?, ?)", seen.added)
                self._db.execute("DELETE FROM seen WHERE seq < ?", (seen.keep_from_seq,))
                self._db.executemany(
                    "INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?) ON"
                    " CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                    [(topic, partition, offset) for (topic, partition), offset in offsets.items()],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save consumer state to {self._path}: {exc}") from exc

    def close(self) -> None:
        """Close the file; the WAL is checkpointed by SQLite on the last close."""
        self._db.close()

"""Opening the service's SQLite files, and writing a transaction, the same way everywhere."""

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from finplat.backtest.errors import StoreError

T = TypeVar("T")


def connect(path: Path, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> sqlite3.Connection:
    """Open (creating the folder) a SQLite file in WAL mode; transactions are explicit.

    WAL lets readers proceed while a batch is written. NORMAL syncs at checkpoints only: it
    survives a process crash, and a power loss rolls back whole transactions, never half ones.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit BEGIN; callers write BEGIN ... COMMIT themselves.
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    return connection


def transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` in one transaction, rolled back if it fails (the connection stays usable)."""
    db.execute("BEGIN")
    try:
        result = work(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result

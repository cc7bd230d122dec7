"""The one SQLite connection of a Store, used only by its writer thread, and its write helper.

Every writing operation runs in `BEGIN IMMEDIATE … COMMIT`, so the write lock is taken before the
first read and the busy timeout applies (a deferred transaction could fail at once on upgrade).
A lock held by another process past the busy timeout becomes StoreBusy: nothing was changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlite_utils import Database

from bot.store.errors import StoreBusy, is_busy
from bot.store.schema import apply_migrations

BUSY_TIMEOUT_MS = 5000
MIN_SQLITE = (3, 35, 0)  # RETURNING


class Conn(Protocol):
    """What the store's parts call on a connection: sqlite3's, or PostgreSQL's through pg.py."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any:
        """Run one statement with `?` placeholders; the cursor holds its rows."""

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> Any:
        """Run one statement once per parameter tuple."""


class StoreDb(Protocol):
    """One connection of a Store, as its parts use it: `Db` (SQLite) or `PgDb` (PostgreSQL)."""

    kind: str  # "sqlite" or "postgresql": only where the two must differ
    conn: Any

    def write(self) -> AbstractContextManager[Any]:
        """One writing transaction (a write inside a write joins it)."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a query, or None."""

    def take_turns(self, key: str) -> None:
        """Inside a write: writes of other processes for `key` run before or after this one."""

    def close(self) -> None:
        """Close the connection."""


def has_books(path: Path) -> bool:
    """Whether `path` is a SQLite file holding the books' tables (read-only; makes nothing).

    A file that is not a database counts as books here, so that opening it reports what is
    wrong with it rather than "no books".
    """
    if not path.is_file():
        return False
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
        ).fetchone()
    except sqlite3.DatabaseError:
        return True
    finally:
        conn.close()
    return found is not None


class Db:
    """The connection (WAL, migrations applied) and `write()`, the transaction every write uses."""

    kind = "sqlite"

    def __init__(
        self, path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS, *, create: bool = True
    ) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} is too old; the store needs 3.35.0 or newer."
            )
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            target, uri = str(path), False
        else:  # an existing file only: mode=rw never makes one
            target, uri = f"{path.absolute().as_uri()}?mode=rw", True
        # isolation_level=None: we issue every BEGIN ourselves (Python's implicit BEGIN is deferred).
        self.conn = sqlite3.connect(
            target, timeout=busy_timeout_ms / 1000, isolation_level=None, uri=uri
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        try:
            apply_migrations(Database(self.conn, execute_plugins=False))
        except sqlite3.OperationalError as exc:
            self.conn.close()
            if is_busy(exc):
                raise StoreBusy() from exc
            raise

    def close(self) -> None:
        """Close the connection (checkpoints the WAL when it is the last one)."""
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One writing transaction: BEGIN IMMEDIATE, commit on success, roll back on any error.

        Inside a group commit (the writer already holds BEGIN IMMEDIATE and a SAVEPOINT for this
        call) it adds nothing: the writer rolls back to the savepoint if the call raises.
        """
        if self.conn.in_transaction:
            yield self.conn
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise StoreBusy() from exc
            raise
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            # Also when COMMIT itself fails: never leave a transaction open on the connection.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """The first row of a query, or None."""
        return self.conn.execute(sql, params).fetchone()

    def take_turns(self, key: str) -> None:
        """Inside a write: serialise with other writers for `key`. SQLite's write lock already
        serialises every write (BEGIN IMMEDIATE), so there is nothing more to take."""

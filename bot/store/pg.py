"""A PostgreSQL connection that the store's parts use exactly as they use SQLite's (psycopg 3).

The parts (quota rules, jobs, reconcile, upkeep) are written once, against the DB-API shape both
drivers share: `conn.execute(sql, params)` returning a cursor, rows read by name or position, and
`db.write()` for a transaction. This module bridges the rest: `?` placeholders become psycopg's
`%s`, rows answer to `row["name"]` and `row[0]` like `sqlite3.Row`, and a lock held past the busy
timeout (or a deadlock) becomes `StoreBusy`, nothing changed. The connection is in autocommit
mode: a read is its own statement, and `write()` is an explicit transaction.

Why psycopg 3 and its synchronous connection, on the store's own threads: see bot/store/store.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from bot.secrets import redact
from bot.settings import shown_database
from bot.store.errors import BooksMissing, StoreBusy, StoreUnavailable
from bot.store.pg_schema import LOCK_NAMESPACE, apply_migrations, has_books

# Errors after which the transaction was rolled back and retrying later can succeed.
_BUSY = (
    pg_errors.LockNotAvailable,  # lock_timeout: another process held a lock too long
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
)


@functools.cache
def pg_sql(sql: str) -> str:
    """The store's SQL with `?` placeholders as psycopg's `%s` (a literal % doubled)."""
    return re.sub(r"\?", "%s", sql.replace("%", "%%"))


@functools.cache
def _row_class(names: tuple[str, ...]) -> type[PgRow]:
    index = {name: i for i, name in enumerate(names)}
    return type("PgRow", (PgRow,), {"_names": names, "_index": index, "__slots__": ()})


class PgRow(tuple):
    """A result row read by position or by column name, like sqlite3.Row."""

    __slots__ = ()
    _names: tuple[str, ...] = ()
    _index: dict[str, int] = {}  # noqa: RUF012 (set once per column layout)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._names)


def connect_reason(exc: BaseException) -> str:
    """psycopg's connection error as one clause: `connection to server at "db", port 5432
    failed: Connection refused`.

    libpq writes its reason on the first line and a hint on the next, tab-indented ("Is the
    server running on that host…?"), which the sentence around it already gives; psycopg
    prefixes "connection failed: ". Whitespace (libpq's "FATAL:  …") is folded to single spaces.
    """
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return "refused"
    first = " ".join(lines[0].split())
    for prefix in ("connection failed: ", "connection is bad: "):
        first = first.removeprefix(prefix)
    return first.rstrip(".")[:200]


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    if cursor.description is None:
        return tuple
    cls = _row_class(tuple(c.name for c in cursor.description))
    return cls


class PgConn:
    """The psycopg connection seen through sqlite3's methods: `execute`, `executemany`.

    A connection the server dropped (a restart, a failover) is made again before the next
    statement that is not inside a transaction.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._raw = connect()

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The live psycopg connection."""
        if self._raw.closed or (self._raw.broken and not self.in_transaction):
            self._raw = self._connect()
        return self._raw

    @property
    def in_transaction(self) -> bool:
        """True inside an open transaction."""
        return self._raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        """Run one statement (with `?` placeholders); the cursor holds its rows."""
        try:
            return self.raw.execute(pg_sql(sql), params or None)  # type: ignore[arg-type]
        except _BUSY as exc:
            raise StoreBusy() from exc

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter tuple."""
        with self.raw.cursor() as cur:
            try:
                cur.executemany(pg_sql(sql), list(seq))  # type: ignore[arg-type]
            except _BUSY as exc:
                raise StoreBusy() from exc

    def close(self) -> None:
        """Close the connection."""
        self._raw.close()


class PgDb:
    """One PostgreSQL connection of a Store (migrations applied), used by one worker thread."""

    kind = "postgresql"

    def __init__(
        self, url: str, busy_timeout_ms: int, *, migrate: bool = True, create: bool = True
    ) -> None:
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms
        self.conn = PgConn(self._connect)
        if migrate:
            if not create and not has_books(self.conn.raw):
                self.conn.close()
                raise BooksMissing(shown_database(url))
            apply_migrations(self.conn.raw)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            raw = psycopg.connect(
                self.url, autocommit=True, row_factory=_row_factory, connect_timeout=10
            )
        except psycopg.OperationalError as exc:
            # psycopg's text names the host and the reason, never the password; the URL is
            # shown without it.
            raise StoreUnavailable(shown_database(self.url), redact(connect_reason(exc))) from None
        # How long a statement waits for another transaction's lock before StoreBusy.
        raw.execute(f"SET lock_timeout = {int(self.busy_timeout_ms)}")
        return raw

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[PgConn]:
        """One transaction: commit on success, roll back on any error."""
        conn = self.conn
        if conn.in_transaction:
            yield conn  # a nested write joins the transaction, as in SQLite
            return
        try:
            with conn.raw.transaction():
                yield conn
        except _BUSY as exc:
            raise StoreBusy() from exc

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a query, or None."""
        return self.conn.execute(sql, params).fetchone()

    def take_turns(self, key: str) -> None:
        """Inside a write: wait until no other transaction holds `key`, then hold it until this
        one ends (other processes' writes for the same key run before or after, never between)."""
        self.conn.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", (LOCK_NAMESPACE, key))

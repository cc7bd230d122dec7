"""Look at a database without changing it: does it open, which migrations are applied or
pending, and does SQLite find it sound (for `remixbot check`); the same for PostgreSQL."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sqlite_utils import Database

from bot.store.schema import MIGRATIONS


@dataclass(frozen=True)
class DbState:
    """What the file holds, compared with the migrations this version knows."""

    exists: bool
    applied: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()  # applied by a newer version of the bot
    problems: tuple[str, ...] = field(default=())  # what `PRAGMA quick_check` reported


def known_migrations() -> tuple[str, ...]:
    """Every migration this version knows, in order (all are pending on an empty database)."""
    return tuple(m.name for m in MIGRATIONS.pending(Database(memory=True)))


def inspect_database(path: Path) -> DbState:
    """Open `path` read-only and compare its migrations with ours (blocking; raises sqlite3
    errors for a file that is not a database)."""
    if not path.exists():
        return DbState(exists=False, pending=known_migrations())
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        db = Database(conn, execute_plugins=False)
        applied = tuple(m.name for m in MIGRATIONS.applied(db))
        pending = tuple(m.name for m in MIGRATIONS.pending(db))
        known = set(known_migrations())
        unknown = tuple(name for name in applied if name not in known)
        result = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
        problems = tuple(r for r in result if r != "ok")
    finally:
        conn.close()
    return DbState(True, applied, pending, unknown, problems)


def inspect_postgres(url: str) -> DbState:
    """The same look at a PostgreSQL database: which of our migrations it has applied (raises
    psycopg errors when the server cannot be reached or refuses the login)."""
    import psycopg  # only with the books in PostgreSQL

    from bot.store.pg_schema import MIGRATIONS as PG_MIGRATIONS
    from bot.store.pg_schema import has_books

    known = tuple(name for name, _ in PG_MIGRATIONS)
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        if not has_books(conn):
            return DbState(exists=False, pending=known)
        rows = conn.execute("SELECT name FROM remixbot_migrations ORDER BY name").fetchall()
    applied = tuple(r[0] for r in rows)
    pending = tuple(name for name in known if name not in applied)
    unknown = tuple(name for name in applied if name not in known)
    return DbState(True, applied, pending, unknown)

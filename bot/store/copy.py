"""Copy the books from a SQLite file into an empty PostgreSQL database (`remixbot db copy`).

Every row moves as it is: the jobs (ids, states, owners, requests, input keys), the ledger, its
hourly summary, the result-message index, the input references and the policies. The triggers
that write ledger rows are off while the rows are copied (the ledger is copied, not made again),
in one transaction: an error leaves PostgreSQL as empty as it was. Identity counters then
continue after the highest copied id. The stored images stay where they are (REMIXBOT_DATA_DIR):
the rows name them by content.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import InvalidRequest
from bot.store.owners import FileOwners, owners_folder

# In an order that copies every row after the rows it refers to (jobs by id: a reroll after its
# parent job).
TABLES = (
    "policy_defaults",
    "policy_guilds",
    "policy_roles",
    "policy_exempt_roles",
    "policy_blocked",
    "jobs",
    "job_messages",
    "job_inputs",
    "quota_ledger",
    "quota_usage",
    "guild_settings",
    "guild_channels",
    "prompt_blocks",
    "job_results",
)
_ORDER = {"jobs": "id", "quota_ledger": "id"}
_WITH_TRIGGERS = ("jobs", "quota_ledger")
_IDENTITY = ("jobs", "quota_ledger")


@dataclass(frozen=True)
class CopyReport:
    """How many rows of each table were copied."""

    rows: dict[str, int]


def _columns(conn: Any, table: str, postgres: bool) -> list[str]:
    if postgres:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        return [r[0] for r in rows]
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def check_not_in_use(sqlite_path: Path) -> None:
    """Refuse while a process (the bot, a `remixbot remix`) still uses the SQLite file."""
    owners = FileOwners(owners_folder(sqlite_path))
    live = [p.stem for p in owners.folder.glob("*.lock") if owners.alive(p.stem)]
    if live:
        raise InvalidRequest(
            "The SQLite file is still in use by a running remixbot (the bot or a remix);"
            " stop it, then copy."
        )


def copy_books(sqlite_path: Path, url: str, busy_timeout_ms: int = 5000) -> CopyReport:
    """Copy every row of the SQLite books at `sqlite_path` into the empty PostgreSQL at `url`
    (migrated first); raises InvalidRequest if PostgreSQL already holds books (nothing copied)."""
    from bot.store.pg import PgDb  # psycopg: only for this

    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    dst = PgDb(url, busy_timeout_ms)
    try:
        rows: dict[str, int] = {}
        with dst.write() as c:
            for table in TABLES:
                if c.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                    raise InvalidRequest(
                        f"The PostgreSQL database already holds remixbot books (its {table}"
                        " table has rows); copy into an empty database."
                    )
            for table in _WITH_TRIGGERS:  # the copied ledger is the record; make none anew
                c.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for table in TABLES:
                rows[table] = _copy_table(src, c, table)
            for table in _WITH_TRIGGERS:
                c.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            for table in _IDENTITY:
                c.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" coalesce(max(id), 0) + 1, false) FROM {table}"
                )
        return CopyReport(rows)
    finally:
        src.close()
        dst.close()


def _copy_table(src: sqlite3.Connection, c: Any, table: str) -> int:
    """COPY one table's rows (the columns both databases have); how many."""
    columns = [col for col in _columns(c, table, True) if col in _columns(src, table, False)]
    names = ", ".join(columns)
    order = f" ORDER BY {_ORDER[table]}" if table in _ORDER else ""
    count = 0
    with c.raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in src.execute(f"SELECT {names} FROM {table}{order}"):
            copy.write_row(row)
            count += 1
    return count

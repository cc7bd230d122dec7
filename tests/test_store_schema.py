"""The two schemas hold the same books: every table and column of SQLite's is PostgreSQL's too.

A new migration on one side (a new table, a new column) fails this test until the other side has
it as well. Only the tables several processes share are PostgreSQL's alone (leases, slots).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.store import QuotaDefaults, Store
from bot.store.pg_schema import MIGRATIONS, ONLY_POSTGRES
from tests.databases import execute

SQLITE_INTERNAL = ("sqlite_", "_sqlite_migrations")


async def test_both_databases_have_the_same_tables_and_columns(
    postgres: str, tmp_path: Path
) -> None:
    sqlite_file = tmp_path / "remixbot.sqlite3"
    for database in (sqlite_file, postgres):
        async with await Store.open(database, defaults=QuotaDefaults(), data_dir=tmp_path):
            pass
    conn = sqlite3.connect(sqlite_file)
    names = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        if not r[0].startswith(SQLITE_INTERNAL)
    ]
    in_sqlite = {n: {r[1] for r in conn.execute(f"PRAGMA table_info({n})")} for n in names}
    conn.close()
    in_postgres: dict[str, set[str]] = {}
    for table, column in execute(
        postgres,
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema()",
    ):
        in_postgres.setdefault(table, set()).add(column)
    assert set(in_postgres) - set(in_sqlite) == set(ONLY_POSTGRES)
    assert in_sqlite == {t: c for t, c in in_postgres.items() if t not in ONLY_POSTGRES}
    applied = [r[0] for r in execute(postgres, "SELECT name FROM remixbot_migrations ORDER BY 1")]
    assert applied == [name for name, _ in MIGRATIONS]

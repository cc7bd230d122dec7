"""The two databases the store, quota and end-to-end tests run on: SQLite and PostgreSQL.

`database` (a fixture, one test per database) gives a test fresh, empty books: a SQLite file in
its tmp_path, or a schema of its own on the PostgreSQL server. The server is the one
`scripts/test-postgres run` started (TEST_POSTGRES_URL, as the README's test command and CI
do); without that variable this session starts one itself through the same script. A server that
cannot start fails the tests: PostgreSQL is never skipped, so a failure there is never hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from bot.store.pg import pg_sql

ROOT = Path(__file__).resolve().parents[1]
SERVER_ENV = "TEST_POSTGRES_URL"
SCRIPT = ROOT / "scripts" / "test-postgres"
DATABASES = ("sqlite", "postgresql")


def in_schema(server: str, schema: str) -> str:
    """The server's URL with `schema` first on the search path (each test's own tables)."""
    options = quote(f"-csearch_path={schema}")
    return f"{server}{'&' if '?' in server else '?'}options={options}"


@contextlib.contextmanager
def throwaway_postgres(*, durable: bool = False) -> Iterator[str]:
    """A PostgreSQL server in a temporary folder, started and stopped by scripts/test-postgres;
    its URL. `durable` keeps PostgreSQL's own defaults (fsync on), for benchmarks."""
    folder = tempfile.mkdtemp(prefix="remixbot-pg.")
    env = {**os.environ, "TEST_POSTGRES_DURABLE": "1" if durable else ""}
    started = subprocess.run(
        [str(SCRIPT), "start", folder], capture_output=True, text=True, timeout=600, env=env
    )
    if started.returncode != 0:
        raise RuntimeError(f"could not start a PostgreSQL server:\n{started.stderr}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(SCRIPT), "stop", folder], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of the test PostgreSQL server (started here if the test command did not)."""
    url = os.environ.get(SERVER_ENV)
    if url:
        yield url
        return
    try:
        with throwaway_postgres() as started:
            yield started
    except RuntimeError as exc:  # never a skip: PostgreSQL failures must show
        pytest.fail(str(exc))


@pytest.fixture
def postgres(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose search path is a fresh, empty schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield in_schema(postgres_server, schema)
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Fresh books for one test, on each database in turn: a SQLite file, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "remixbot.sqlite3"
    return request.getfixturevalue("postgres")


def execute(database: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement (`?` placeholders) on the books directly, outside any Store: to peek
    at them, or to tamper with them as a test must. Returns the rows; raises the driver's error."""
    if isinstance(database, Path):
        conn = sqlite3.connect(database)
        try:
            rows = conn.execute(sql, params).fetchall()
            conn.commit()
        finally:
            conn.close()
        return rows
    with psycopg.connect(database, autocommit=True) as pg:
        cur = pg.execute(pg_sql(sql), params or None)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


async def until_leases_run_out(database: Path | str, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """PostgreSQL: wait (bounded) until no process holds a lease, as after killing them all. A
    SQLite file's owners are gone as soon as their processes are (the kernel drops the locks)."""
    if isinstance(database, Path):
        return
    deadline = time.monotonic() + timeout
    while execute(database, "SELECT count(*) FROM owners WHERE expires_at > now()") != [(0,)]:
        assert time.monotonic() < deadline, "a lease did not run out"
        await asyncio.sleep(0.2)

"""`remixbot backup FILE` (a consistent copy while another process writes) and `remixbot stats`."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.errors import InvalidRequest
from bot.settings import load_settings
from bot.store import Store
from bot.store.backup import backup_database, dated_name
from tests.store_helpers import new_job

ROOT = Path(__file__).resolve().parents[1]


def books_env(database: Path | str | None) -> dict[str, str]:
    """The setting that puts the books in `database` (a SQLite file needs none)."""
    return {"REMIXBOT_DATABASE_URL": database} if isinstance(database, str) else {}


def settings_for(data: Path, database: Path | str | None = None):  # type: ignore[no-untyped-def]
    return load_settings(
        {"REMIXBOT_BACKEND": "demo", "REMIXBOT_DATA_DIR": str(data), **books_env(database)},
        dotenv=None,
    )


async def remixbot(
    data: Path, *args: str, database: Path | str | None = None
) -> tuple[int, str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "REMIXBOT_BACKEND": "demo",
        "REMIXBOT_DATA_DIR": str(data),
        **books_env(database),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=data.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def delivered(
    store: Store, user: int, guild: int | None, images: int, billed: int, when: datetime
) -> None:
    job = await store.submit_job(new_job(user, guild, images), now=when)
    await store.mark_running(job.id)
    await store.settle(job.id, images if billed else 0, billed=billed, now=when)


async def test_stats_by_guild_member_and_day(database: Path | str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await Store.from_settings(settings_for(data, database)) as store:
        await delivered(store, 1, 7, 2, 2, datetime(2026, 11, 1, 10, tzinfo=UTC))
        await delivered(store, 1, 7, 1, 1, datetime(2026, 11, 1, 12, tzinfo=UTC))
        await delivered(store, 2, 7, 3, 3, datetime(2026, 11, 2, 9, tzinfo=UTC))
        await delivered(store, 3, 8, 1, 1, datetime(2026, 11, 2, 9, tzinfo=UTC))
        unknown = await store.submit_job(new_job(3, 8, 2), now=datetime(2026, 11, 3, tzinfo=UTC))
        await store.mark_running(unknown.id)
        await store.fail(unknown.id, "timed out", "unknown", None)
        rows = await store.usage()
        assert [(r.day, r.guild_id, r.user_id, r.jobs, r.images, r.billed) for r in rows] == [
            ("2026-11-01", 7, 1, 2, 3, 3),
            ("2026-11-02", 7, 2, 1, 3, 3),
            ("2026-11-02", 8, 3, 1, 1, 1),
            ("2026-11-03", 8, 3, 1, 0, 0),
        ]
        assert rows[-1].unknown_cost == 1
        assert [r.user_id for r in await store.usage(guild_id=8, since=date(2026, 11, 3))] == [3]
        # The terminal's own remixes: one saved, one the backend refused.
        await delivered(store, 0, None, 2, 2, datetime(2026, 11, 3, 8, tzinfo=UTC))
        refused = await store.submit_job(new_job(0, None, 1), now=datetime(2026, 11, 3, tzinfo=UTC))
        await store.fail(refused.id, "rejected", "failed", 0)

    code, out, err = await remixbot(data, "stats", "--guild", "7", "--json", database=database)
    assert code == 0, err
    report = json.loads(out)
    assert report["total"] == {
        "jobs": 3,
        "images": 6,
        "billed": 6,
        "unknown_cost": 0,
        "delivered_jobs": 3,
    }
    assert [d["day"] for d in report["by_day"]] == ["2026-11-01", "2026-11-02"]
    code, out, err = await remixbot(data, "stats", "--since", "2026-11-02", database=database)
    assert code == 0, err
    assert "2026-11-01" not in out and "2026-11-02" in out
    # Only the jobs that delivered deliver; the failed one is counted apart.
    assert (
        "8: 1 image delivered by 1 of 2 jobs; the backend billed 1 image (1 job of unknown cost)"
        in out
    )
    assert "DMs/terminal: 2 images delivered by 1 of 2 jobs; the backend billed 2 images\n" in out
    terminal = [line.split() for line in out.splitlines() if line.startswith("2026-11-03  DMs")]
    assert terminal == [["2026-11-03", "DMs/terminal", "terminal", "(cli)", "2", "2", "2", "0"]]
    code, _, err = await remixbot(data, "stats", "--since", "yesterday", database=database)
    assert code == 2 and "YYYY-MM-DD" in err


async def test_backup_is_consistent_while_another_process_writes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = settings_for(data)
    async with await Store.from_settings(settings) as store:
        for i in range(20):
            await delivered(store, i, 7, 1, 1, datetime(2026, 11, 1, tzinfo=UTC))

        # The bot keeps writing (its own Store, its own connection) while the backup runs.
        stop = asyncio.Event()

        async def keep_writing() -> int:
            n = 0
            while not stop.is_set():
                await delivered(store, 1000 + n, 7, 1, 1, datetime(2026, 11, 2, tzinfo=UTC))
                n += 1
            return n

        writer = asyncio.create_task(keep_writing())
        try:
            target = tmp_path / "backups" / "remixbot.sqlite3"
            code, out, err = await remixbot(data, "backup", str(target))
        finally:
            stop.set()
            written = await asyncio.wait_for(writer, 30)
        assert code == 0, err
        assert f"to {target}" in out and "Restore:" in out
        assert written > 0
        books = await store.check_books()
        assert books == []

    copy = sqlite3.connect(target)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        jobs = copy.execute("SELECT count(*) FROM jobs").fetchone()[0]
        assert 20 <= jobs <= 20 + written
        # A snapshot: every job in it is whole (its ledger rows came with it).
        open_ledger = copy.execute(
            "SELECT count(*) FROM jobs WHERE state = 'delivered' AND images_delivered = 0"
        ).fetchone()[0]
        assert open_ledger == 0
    finally:
        copy.close()
    assert not list(target.parent.glob(".*.tmp"))  # no temporary file left behind

    # An existing file is never overwritten without --force; the database itself never.
    code, _, err = await remixbot(data, "backup", str(target))
    assert code != 0 and "already exists" in err
    code, _, err = await remixbot(data, "backup", str(settings.db_path), "--force")
    assert code != 0 and "another file" in err
    code, _, _ = await remixbot(data, "backup", str(target), "--force")
    assert code == 0


async def test_backup_sends_postgresql_users_to_the_server_s_own_tools(
    postgres: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    code, _, err = await remixbot(data, "backup", str(tmp_path / "x.sqlite3"), database=postgres)
    assert code == 2
    assert "in PostgreSQL" in err and "pg_dump" in err and postgres not in err
    assert not (tmp_path / "x.sqlite3").exists()


async def test_backup_into_a_folder_writes_a_dated_file_there(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await Store.from_settings(settings_for(data)) as store:
        await delivered(store, 1, 7, 1, 1, datetime(2026, 11, 1, tzinfo=UTC))
    folder = tmp_path / "backups"
    folder.mkdir()
    before = date.today()
    code, out, err = await remixbot(data, "backup", str(folder), "--force", "--json")
    assert code == 0, err
    made = Path(json.loads(out)["file"])
    # The file is named for today (the day may turn while the command runs).
    assert made.name in {dated_name(before), dated_name(date.today())}
    assert made.parent == folder and await asyncio.to_thread(made.is_file)
    copy = sqlite3.connect(made)
    try:
        assert copy.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1
    finally:
        copy.close()
    # Today's file is there now: the same command needs --force again, as for a file.
    code, _, err = await remixbot(data, "backup", str(folder))
    assert (code, err) == (
        2,
        f"remixbot: {made} already exists; choose another file or pass --force.\n",
    )
    assert sorted(p.name for p in folder.iterdir()) == [made.name]


async def test_a_name_ending_in_a_slash_is_a_folder_even_before_it_exists(tmp_path: Path) -> None:
    # docs/deploy.md's `remixbot backup /backups/`: the slash says "a folder", so the dated file
    # goes inside it, never a file named like the folder.
    data = tmp_path / "data"
    async with await Store.from_settings(settings_for(data)) as store:
        await delivered(store, 1, 7, 1, 1, datetime(2026, 11, 1, tzinfo=UTC))
    folder = tmp_path / "backups"
    before = date.today()
    code, out, err = await remixbot(data, "backup", f"{folder}/")
    assert code == 0, err
    assert await asyncio.to_thread(folder.is_dir)
    made = [p.name for p in folder.iterdir()]
    assert made in ([dated_name(before)], [dated_name(date.today())])
    assert f"to {folder / made[0]} (" in out and "1 job)" in out


def test_a_folder_given_as_the_backup_file_is_refused_in_one_sentence(tmp_path: Path) -> None:
    source = tmp_path / "remixbot.sqlite3"
    sqlite3.connect(source).close()
    folder = tmp_path / "backups"
    folder.mkdir()
    with pytest.raises(InvalidRequest) as refused:
        backup_database(source, folder, overwrite=True)
    assert str(refused.value) == (
        f"{folder} is a folder; give the backup a file name, e.g."
        f" {folder / dated_name(date.today())}."
    )

"""The store across OS processes sharing one set of books (a SQLite file, or PostgreSQL):
contention and SIGKILLed workers."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bot.store import CLI_USER_ID, QuotaDefaults, Store
from bot.store.owners import owners_folder
from tests.databases import execute, until_leases_run_out
from tests.store_helpers import count_open

ROOT = Path(__file__).resolve().parents[1]


def _spawn(mode: str, db: Path | str, data_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store_helpers", mode, str(db), str(data_dir), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_four_processes_share_one_limit_exactly(database: Path | str, tmp_path: Path) -> None:
    db = database
    # Create the schema first, then let four processes race on the same user's quota.
    async with await Store.open(db, defaults=QuotaDefaults(limit=5), data_dir=tmp_path):
        pass
    start_at = f"{time.time() + 1.5:.3f}"
    procs = [_spawn("reserve", db, tmp_path, "42", "50", "5", start_at) for _ in range(4)]
    accepted: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        accepted += json.loads(out)
    assert len(accepted) == 5 and len(set(accepted)) == 5
    await until_leases_run_out(db)  # the workers closed their stores: nothing to wait for
    async with await Store.open(db, defaults=QuotaDefaults(limit=5), data_dir=tmp_path) as s:
        assert len(await s.list_jobs(limit=500)) == 5
        status = await s.quota_status(42, 7)
        assert (status.reserved, status.remaining) == (5, 0)
        # The workers' jobs are Discord jobs: opening left them for the bot, which claims them.
        assert sorted(s.reconciled_at_open.for_bot) == sorted(accepted)
        report = await s.reconcile(claim_discord_jobs=True)
        assert sorted(j.id for j in report.requeue) == sorted(accepted)
        for job in report.requeue:
            await s.fail(job.id, "test over", billed=0)
        assert await s.check_books() == []
        assert (await s.quota_status(42, 7)).remaining == 5


async def test_four_processes_open_fresh_books_at_once(
    database: Path | str, tmp_path: Path
) -> None:
    db = database  # migrations race too: they take turns (BEGIN IMMEDIATE, an advisory lock)
    start_at = f"{time.time() + 1.5:.3f}"
    procs = [_spawn("reserve", db, tmp_path, "42", "10", "3", start_at) for _ in range(4)]
    accepted: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        accepted += json.loads(out)
    assert len(accepted) == 3


async def _killed_worker(
    db: Path | str, data_dir: Path, backend: str, ref: str, *, reconcile_while_alive: bool = False
) -> dict[str, int]:
    proc = _spawn("hold", db, data_dir, backend, ref, "3")
    try:
        line = proc.stdout.readline()  # bounded: the worker prints within a second or two
        ids = json.loads(line)
        if reconcile_while_alive:
            # While the worker lives, another process's reconcile (a bot starting) leaves its
            # jobs alone.
            async with await Store.open(
                db, defaults=QuotaDefaults(limit=100), data_dir=data_dir
            ) as s:
                report = await s.reconcile(claim_discord_jobs=True, resumable={"task-proxy"})
                assert sorted(report.elsewhere) == sorted(ids.values())
                assert report.touched == 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return ids


async def test_sigkilled_worker_books_balance_after_restart(
    database: Path | str, tmp_path: Path
) -> None:
    db, kw = database, {"defaults": QuotaDefaults(limit=100), "data_dir": tmp_path}
    async with await Store.open(db, **kw):
        pass
    sync_ids = await _killed_worker(db, tmp_path, "ideogram", "-", reconcile_while_alive=True)
    task_ids = await _killed_worker(db, tmp_path, "task-proxy", "task-77")
    await until_leases_run_out(db)
    async with await Store.open(db, **kw) as s:
        before = await s.quota_status(9, 7)
        assert (before.reserved, before.used) == (12, 0)  # four jobs of 3 left open by the kills
        report = await s.reconcile(claim_discord_jobs=True, resumable={"task-proxy"})
        queued = sorted([sync_ids["queued"], task_ids["queued"]])
        assert sorted(j.id for j in report.requeue) == queued
        assert report.unknown == (sync_ids["running"],)
        assert [j.id for j in report.closed_unknown] == [sync_ids["running"]]
        assert [j.id for j in report.resumable] == [task_ids["running"]]
        assert await s.backend_cost(sync_ids["running"]) == ("unknown", None)
        status = await s.quota_status(9, 7)
        # The jobs to run again and the one to resume hold their images; nothing else does.
        assert (status.reserved, status.used) == (9, 0)
        for job_id in queued:
            await s.fail(job_id, "test over", billed=0)
        await s.settle(task_ids["running"], delivered=3, billed=3)
        assert await s.check_books() == []
        for job_id in (*sync_ids.values(), *task_ids.values()):
            balance = await s.ledger_balance(job_id)
            assert balance.balanced and balance.reserved == 3
        assert (await s.quota_status(9, 7)).used == 3
    # The killed workers' lock files (or leases) were swept; a closed Store removes its own.
    if isinstance(db, Path):
        assert list(owners_folder(db).glob("*.lock")) == []
    else:
        assert execute(db, "SELECT count(*) FROM owners") == [(0,)]


async def test_sixteen_killed_terminal_runs_hold_no_quota_after_one_more_run(
    database: Path | str, tmp_path: Path
) -> None:
    # Defect 8: `remixbot remix` runs killed at random moments left their jobs open, holding
    # the terminal user's quota until the bot next started. Any process that opens the store
    # now reconciles the jobs of owners that are gone.
    db, kw = database, {"defaults": QuotaDefaults(limit=10_000), "data_dir": tmp_path}
    async with await Store.open(db, **kw):
        pass
    rng = random.Random(8)
    procs = [_spawn("terminal", db, tmp_path, str(seed)) for seed in range(16)]
    try:
        for p in procs:  # each holds its first job (bounded: a few seconds on a busy machine)
            assert json.loads(p.stdout.readline())["first"] > 0
        for p in rng.sample(procs, len(procs)):
            await asyncio.sleep(rng.uniform(0, 0.15))
            p.send_signal(signal.SIGKILL)
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    left_open, held = count_open(db)
    assert left_open >= 1 and held >= 1  # the kills did leave jobs open

    await until_leases_run_out(db)
    async with await Store.open(db, **kw) as s:
        assert (await s.quota_status(CLI_USER_ID, None)).reserved == 0
        assert await s.list_jobs(state="queued") == []
        assert await s.list_jobs(state="running") == []
        assert len(s.reconciled_at_open.failed + s.reconciled_at_open.unknown) >= 1
        assert await s.check_books() == []
    assert count_open(db) == (0, 0)
    if isinstance(db, Path):
        assert list(owners_folder(db).glob("*.lock")) == []


async def test_a_journal_written_while_the_database_was_locked_is_settled_after_a_kill(
    tmp_path: Path,
) -> None:
    # Defect 1 (store side): the results were posted while another process held the write lock;
    # settling timed out, then the process was killed. The post is not lost: the next open
    # settles the terminal job from the journal, the bot's reconcile the Discord one.
    db = tmp_path / "remixbot.sqlite3"
    async with await Store.open(db, defaults=QuotaDefaults(limit=100)):
        pass
    proc = _spawn("posted", db, tmp_path)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        ids = json.loads(proc.stdout.readline())
        holder.execute("BEGIN IMMEDIATE")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == ["busy", "busy"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        states = dict(holder.execute("SELECT id, state FROM jobs").fetchall())
        assert states == {ids["terminal"]: "running", ids["discord"]: "running"}
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        proc.kill()
        proc.wait(timeout=30)
    journal = tmp_path / "posted"
    assert {p.name for p in journal.iterdir()} == {f"job-{i}.json" for i in ids.values()}

    async with await Store.open(db, defaults=QuotaDefaults(limit=100)) as s:
        assert s.reconciled_at_open.delivered == (ids["terminal"],)
        assert s.reconciled_at_open.for_bot == (ids["discord"],)
        report = await s.reconcile(claim_discord_jobs=True, resumable={"task-proxy"})
        assert (report.delivered, report.resumable) == ((ids["discord"],), ())
        for job_id in ids.values():
            job = await s.get_job(job_id)
            assert (job.state, job.images_delivered, job.images_withheld) == ("delivered", 2, 1)
            assert await s.backend_cost(job_id) == ("billed", 3)
            balance = await s.ledger_balance(job_id)
            assert (balance.reserved, balance.charged, balance.refunded) == (3, 2, 1)
        assert (await s.job_for_message(7002)).id == ids["discord"]
        assert await s.check_books() == []
    assert list(journal.iterdir()) == []

"""The store across OS processes sharing one SQLite file: contention and a SIGKILLed worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.store import QuotaDefaults, Store
from bot.store.owners import owners_folder

ROOT = Path(__file__).resolve().parents[1]


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store_helpers", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_four_processes_share_one_limit_exactly(tmp_path: Path) -> None:
    db = tmp_path / "remixbot.sqlite3"
    # Create the schema first, then let four processes race on the same user's quota.
    async with await Store.open(db, defaults=QuotaDefaults(limit=5)):
        pass
    start_at = f"{time.time() + 1.5:.3f}"
    procs = [_spawn("reserve", str(db), "42", "50", "5", start_at) for _ in range(4)]
    accepted: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        accepted += json.loads(out)
    assert len(accepted) == 5 and len(set(accepted)) == 5
    async with await Store.open(db, defaults=QuotaDefaults(limit=5)) as s:
        assert len(await s.list_jobs(limit=500)) == 5
        status = await s.quota_status(42, 7)
        assert (status.reserved, status.remaining) == (5, 0)
        report = await s.reconcile()
        assert sorted(report.failed) == sorted(accepted)
        assert await s.check_books() == []
        assert (await s.quota_status(42, 7)).remaining == 5


async def test_four_processes_open_a_fresh_file_at_once(tmp_path: Path) -> None:
    db = tmp_path / "fresh.sqlite3"  # migrations race too: BEGIN IMMEDIATE makes them take turns
    start_at = f"{time.time() + 1.5:.3f}"
    procs = [_spawn("reserve", str(db), "42", "10", "3", start_at) for _ in range(4)]
    accepted: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        accepted += json.loads(out)
    assert len(accepted) == 3


async def _killed_worker(
    db: Path, backend: str, ref: str, *, reconcile_while_alive: bool = False
) -> dict[str, int]:
    proc = _spawn("hold", str(db), backend, ref, "3")
    try:
        line = proc.stdout.readline()  # bounded: the worker prints within a second or two
        ids = json.loads(line)
        if reconcile_while_alive:
            # While the worker lives, another process's reconcile (a bot starting) leaves its
            # jobs alone.
            async with await Store.open(db, defaults=QuotaDefaults(limit=100)) as s:
                report = await s.reconcile()
                assert sorted(report.elsewhere) == sorted(ids.values())
                assert (report.failed, report.unknown, report.resumable) == ((), (), ())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return ids


async def test_sigkilled_worker_books_balance_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "remixbot.sqlite3"
    async with await Store.open(db, defaults=QuotaDefaults(limit=100)):
        pass
    sync_ids = await _killed_worker(db, "ideogram", "-", reconcile_while_alive=True)
    task_ids = await _killed_worker(db, "task-proxy", "task-77")
    async with await Store.open(db, defaults=QuotaDefaults(limit=100)) as s:
        before = await s.quota_status(9, 7)
        assert (before.reserved, before.used) == (12, 0)  # four jobs of 3 left open by the kills
        report = await s.reconcile()
        assert sorted(report.failed) == sorted([sync_ids["queued"], task_ids["queued"]])
        assert report.unknown == (sync_ids["running"],)
        assert [j.id for j in report.resumable] == [task_ids["running"]]
        assert await s.backend_cost(sync_ids["running"]) == ("unknown", None)
        status = await s.quota_status(9, 7)
        assert (status.reserved, status.used) == (3, 0)  # only the resumable job holds images
        await s.settle(task_ids["running"], delivered=3, billed=3)
        assert await s.check_books() == []
        for job_id in (*sync_ids.values(), *task_ids.values()):
            balance = await s.ledger_balance(job_id)
            assert balance.balanced and balance.reserved == 3
        assert (await s.quota_status(9, 7)).used == 3
    # The killed workers' lock files were swept; a closed Store removes its own.
    assert list(owners_folder(db).glob("*.lock")) == []

"""Reconcile's rule table, the posted journal and `settle_posted`, on each database.

An "orphan" is an open job whose process is gone: here, a Store that was closed (its owner lock
released), as a crash leaves it. Discord jobs have a channel; terminal jobs have none.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from bot.errors import InvalidRequest
from bot.store import PostedRecord, QuotaDefaults, ReconcileReport, Store, StoreBusy
from bot.store.models import Job
from tests.store_helpers import new_job, terminal_job

SITUATIONS = ("posted_journal", "posted_messages", "queued", "resumable", "no_ref", "sync")
BUCKETS = (
    "failed",
    "unknown",
    "resumable",
    "elsewhere",
    "requeue",
    "closed_unknown",
    "delivered",
    "for_bot",
)

# (kind, situation) -> (state after, report buckets holding the job, images charged) when the
# bot reconciles (claim_discord_jobs=True). Without the claim, Discord jobs are all left alone.
EXPECTED_CLAIMING = {
    ("discord", "posted_journal"): ("delivered", {"delivered"}, 2),
    ("discord", "posted_messages"): ("delivered", {"delivered"}, 3),
    ("discord", "queued"): ("queued", {"requeue"}, 0),
    ("discord", "resumable"): ("running", {"resumable"}, 0),
    ("discord", "no_ref"): ("unknown", {"unknown", "closed_unknown"}, 0),
    ("discord", "sync"): ("unknown", {"unknown", "closed_unknown"}, 0),
    ("terminal", "posted_journal"): ("delivered", {"delivered"}, 2),
    ("terminal", "posted_messages"): ("delivered", {"delivered"}, 3),
    ("terminal", "queued"): ("failed", {"failed"}, 0),
    ("terminal", "resumable"): ("unknown", {"unknown"}, 0),
    ("terminal", "no_ref"): ("unknown", {"unknown"}, 0),
    ("terminal", "sync"): ("unknown", {"unknown"}, 0),
}


async def _open(db: Path | str, data_dir: Path, **kw: Any) -> Store:
    return await Store.open(db, defaults=QuotaDefaults(limit=1000), data_dir=data_dir, **kw)


async def _orphan(store: Store, kind: str, situation: str) -> Job:
    """One open job of `store` in `situation`; it becomes an orphan when the store closes."""
    task = situation in ("posted_journal", "posted_messages", "resumable", "no_ref")
    backend = "task-proxy" if task else "ideogram"
    new = (
        new_job(images=3, backend=backend)
        if kind == "discord"
        else terminal_job(3, backend=backend)
    )
    job = await store.submit_job(new)
    if situation == "queued":
        return job
    ref = None if situation == "no_ref" else ("req-1" if backend == "ideogram" else "task-1")
    await store.mark_running(job.id, ref)
    if situation == "posted_journal":
        await store.journal_posted(PostedRecord(job.id, (8000 + job.id,), 55, 2, 1, 3))
    if situation == "posted_messages":  # recorded, then the process died before settling
        await store.record_messages(job.id, [9000 + job.id], 55)
    return await store.get_job(job.id)


def _buckets(report: ReconcileReport, job_id: int) -> set[str]:
    found = set()
    for name in BUCKETS:
        for item in getattr(report, name):
            if (item.id if isinstance(item, Job) else item) == job_id:
                found.add(name)
    return found


@pytest.mark.parametrize("claim", [True, False], ids=["bot", "terminal-or-admin"])
async def test_reconcile_rule_table(database: Path | str, tmp_path: Path, claim: bool) -> None:
    db = database
    jobs: dict[tuple[str, str], Job] = {}
    async with await _open(db, tmp_path) as gone:
        for kind in ("discord", "terminal"):
            for situation in SITUATIONS:
                jobs[kind, situation] = await _orphan(gone, kind, situation)
    journal = tmp_path / "posted"
    assert sorted(p.name for p in journal.iterdir()) == sorted(
        f"job-{jobs[k, 'posted_journal'].id}.json" for k in ("discord", "terminal")
    )

    async with await _open(db, tmp_path, reconcile=False) as s:
        report = await s.reconcile(claim_discord_jobs=claim, resumable={"task-proxy"})
        for (kind, situation), job in jobs.items():
            state, buckets, charged = EXPECTED_CLAIMING[kind, situation]
            if kind == "discord" and not claim:
                state, buckets, charged = job.state, {"for_bot"}, 0
            where = f"{kind} {situation}"
            assert (await s.get_job(job.id)).state == state, where
            assert _buckets(report, job.id) == buckets, where
            balance = await s.ledger_balance(job.id)
            assert balance.reserved == 3, where
            assert balance.charged == charged, where
            if state in ("delivered", "failed", "unknown"):
                assert balance.balanced, where
        # A posted journal is gone once its job is settled, and kept while it is not.
        kept = {p.name for p in journal.iterdir()}
        assert (f"job-{jobs['discord', 'posted_journal'].id}.json" in kept) == (not claim)
        assert f"job-{jobs['terminal', 'posted_journal'].id}.json" not in kept
        if claim:
            posted = await s.get_job(jobs["discord", "posted_journal"].id)
            assert (posted.images_delivered, posted.images_withheld) == (2, 1)
            assert posted.message_ids == (8000 + posted.id,)
            assert (await s.job_for_message(8000 + posted.id)).id == posted.id
            assert await s.backend_cost(posted.id) == ("billed", 3)
            # Claimed jobs are this process's now: another process leaves them alone.
            claimed = {jobs["discord", "queued"].id, jobs["discord", "resumable"].id}
            async with await _open(db, tmp_path) as other:
                again = await other.reconcile(claim_discord_jobs=True, resumable={"task-proxy"})
                assert set(again.elsewhere) == claimed and again.touched == 0
            # Reconciling again in the same process finds nothing more to do.
            assert (await s.reconcile(claim_discord_jobs=True)).touched == 0
        for job in await s.list_jobs(limit=100):
            await s.fail(job.id, "test over", billed=0)  # a no-op on final jobs
        assert await s.check_books() == []


async def test_a_posted_task_proxy_job_is_settled_not_resumed(
    database: Path | str, tmp_path: Path
) -> None:
    # Defect 3: a task-proxy job that crashed between posting and settling was resumed at the
    # next start and posted its results a second time.
    db = database
    async with await _open(db, tmp_path) as gone:
        journaled = await _orphan(gone, "discord", "posted_journal")
        recorded = await _orphan(gone, "discord", "posted_messages")
    async with await _open(db, tmp_path) as bot:
        report = await bot.reconcile(claim_discord_jobs=True, resumable={"task-proxy"})
        assert report.resumable == ()
        assert sorted(report.delivered) == sorted([journaled.id, recorded.id])
        for job in (journaled, recorded):
            assert (await bot.get_job(job.id)).state == "delivered"
        assert (await bot.quota_status(42, 7)).used == 2 + 3
        assert await bot.check_books() == []


async def test_settle_posted_records_and_settles_in_one_transaction(tmp_path: Path) -> None:
    db = tmp_path / "remixbot.sqlite3"
    async with await _open(db, tmp_path) as s:
        job = await s.submit_job(new_job(images=4))
        await s.mark_running(job.id, "req-1")
        record = PostedRecord(job.id, (501, 502), 55, images=3, withheld=1, billed=4)
        await s.journal_posted(record)
        # The settle fails after the messages were written: nothing of it may stay.
        side = sqlite3.connect(db)
        side.execute(
            "CREATE TRIGGER refuse_settle BEFORE UPDATE OF state ON jobs"
            " WHEN NEW.state = 'delivered' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        side.commit()
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            await s.settle_posted(record)
        after = await s.get_job(job.id)
        assert (after.state, after.message_ids) == ("running", ())
        assert side.execute("SELECT count(*) FROM job_messages").fetchone() == (0,)
        assert s.journal.path(job.id).exists()  # still the only record of the post
        side.execute("DROP TRIGGER refuse_settle")
        side.commit()
        side.close()

        done = await s.settle_posted(record)
        assert (done.state, done.images_delivered, done.images_withheld) == ("delivered", 3, 1)
        assert done.message_ids == (501, 502) and done.message_channel_id == 55
        assert (await s.job_for_message(502)).id == job.id
        assert await s.backend_cost(job.id) == ("billed", 4)
        assert not s.journal.path(job.id).exists()
        # Idempotent: a replay (or another record) on the final job changes nothing.
        other = PostedRecord(job.id, (503,), 56, images=4, withheld=0, billed=9)
        assert await s.settle_posted(other) == done
        assert await s.settle_posted(record) == done
        assert await s.job_for_message(503) is None
        balance = await s.ledger_balance(job.id)
        assert (balance.reserved, balance.charged, balance.refunded) == (4, 3, 1)
        assert await s.check_books() == []


async def test_journal_is_written_while_the_database_is_locked(tmp_path: Path) -> None:
    db = tmp_path / "remixbot.sqlite3"
    async with await _open(db, tmp_path, busy_timeout=1.0) as s:
        job = await s.submit_job(new_job(images=2))
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            record = PostedRecord(job.id, (601,), 55, images=2, billed=2)
            started = time.perf_counter()
            await asyncio.wait_for(s.journal_posted(record), 5)
            # Well under the busy timeout (1 s), which a write waiting for the lock would take.
            assert time.perf_counter() - started < 0.6
            assert s.journal.path(job.id).exists()
            with pytest.raises(StoreBusy):
                await asyncio.wait_for(s.settle_posted(record), 5)
            assert s.journal.path(job.id).exists()  # the post is still on record
            # A 🔁 on the posted result finds its job though the books do not hold it yet.
            assert (await asyncio.wait_for(s.job_for_message(601), 5)).id == job.id
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        # The database is free again: the retry settles it and clears the journal.
        assert (await s.settle_posted(record)).state == "delivered"
        assert not s.journal.path(job.id).exists()
        assert await s.check_books() == []


async def test_journals_of_live_owners_are_left_and_stale_ones_deleted(
    database: Path | str, tmp_path: Path
) -> None:
    db = database
    async with await _open(db, tmp_path) as worker, await _open(db, tmp_path) as bot:
        live = await worker.submit_job(new_job(images=2))
        await worker.mark_running(live.id, "task-1")
        live_record = PostedRecord(live.id, (701,), 55, images=2, billed=2)
        await worker.journal_posted(live_record)
        # A job settled, whose journal file outlived its commit (a crash in between).
        done = await worker.submit_job(new_job(images=1))
        await worker.settle(done.id, delivered=1, billed=1)
        await worker.journal_posted(PostedRecord(done.id, (702,), 55, images=1, billed=1))

        report = await bot.reconcile(claim_discord_jobs=True, resumable={"task-proxy"})
        assert (report.elsewhere, report.touched) == ((live.id,), 0)
        assert worker.journal.path(live.id).exists()
        assert not worker.journal.path(done.id).exists()
        assert (await bot.get_job(done.id)).message_ids == ()  # the final job is unchanged
        assert (await worker.settle_posted(live_record)).state == "delivered"
        assert not worker.journal.path(live.id).exists()
        assert await bot.check_books() == []


async def test_a_reconcile_with_nothing_to_do_takes_no_write_lock(tmp_path: Path) -> None:
    # The bot checks every minute; while nothing is orphaned it must not contend for the lock.
    db = tmp_path / "remixbot.sqlite3"
    async with await _open(db, tmp_path, busy_timeout=0.2) as s, await _open(db, tmp_path) as live:
        mine = await s.submit_job(new_job(images=1))
        theirs = await live.submit_job(terminal_job(1))
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            for _ in range(20):
                report = await asyncio.wait_for(
                    s.reconcile(claim_discord_jobs=True, resumable={"task-proxy"}), 5
                )
                assert (report.elsewhere, report.touched) == ((theirs.id,), 0)
            await live.close()  # now `theirs` is an orphan: closing it needs the lock
            with pytest.raises(StoreBusy):
                await asyncio.wait_for(s.reconcile(claim_discord_jobs=True), 5)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert (await s.reconcile()).failed == (theirs.id,)
        assert (await s.get_job(mine.id)).state == "queued"  # this process's own job
        await s.fail(mine.id, "test over", billed=0)
        assert await s.check_books() == []


async def test_opening_the_store_closes_terminal_orphans_only(
    database: Path | str, tmp_path: Path
) -> None:
    # Defect 8, in one process: every open reconciles the terminal jobs of processes gone.
    db = database
    async with await _open(db, tmp_path) as gone:
        term = await _orphan(gone, "terminal", "sync")
        disc = await _orphan(gone, "discord", "sync")
    async with await _open(db, tmp_path) as s:
        assert s.reconciled_at_open.unknown == (term.id,)
        assert s.reconciled_at_open.for_bot == (disc.id,)
        assert (await s.get_job(disc.id)).state == "running"
        assert (await s.quota_status(0, None)).reserved == 0
    async with await _open(db, tmp_path, reconcile=False) as s:
        assert s.reconciled_at_open == ReconcileReport()
        await s.fail(disc.id, "test over", billed=0)
        assert await s.check_books() == []


def test_a_posted_record_refuses_bad_numbers_in_one_sentence() -> None:
    with pytest.raises(
        InvalidRequest, match=r"^Posted images must be a whole number of at least 0"
    ):
        PostedRecord(1, (), None, images=-1)
    with pytest.raises(InvalidRequest, match=r"^A message id must be a whole number of at least 1"):
        PostedRecord(1, ("abc",), None, images=1)
    assert PostedRecord(1, [5, 6], 55, images=2).message_ids == (5, 6)  # stored as a tuple

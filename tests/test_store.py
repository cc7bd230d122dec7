"""The job store on real databases (a SQLite file, a PostgreSQL server): job lifecycle,
idempotency, restart rules, inputs, forget; SQLite's own upgrades and locks."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from bot.errors import InvalidRequest
from bot.store import (
    ANON_USER_ID,
    JobNotFound,
    QuotaDefaults,
    Store,
    StoreBusy,
)
from bot.store.inputs import InputStore
from bot.store.schema import MIGRATIONS, apply_migrations
from tests.databases import execute
from tests.store_helpers import new_job


@pytest.fixture
async def store(database: Path | str, tmp_path: Path):
    async with await Store.open(database, defaults=QuotaDefaults(limit=25), data_dir=tmp_path) as s:
        yield s
        assert await s.check_books() == []


async def test_open_applies_migrations_once_and_sets_wal(tmp_path: Path) -> None:
    db_path = tmp_path / "nested" / "remixbot.sqlite3"
    async with await Store.open(db_path, defaults=QuotaDefaults()) as s:
        await s.submit_job(new_job())
    async with await Store.open(db_path, defaults=QuotaDefaults()) as s:
        assert len(await s.list_jobs()) == 1
    db = Database(sqlite3.connect(db_path))
    assert db.journal_mode == "wal"
    schema = db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    apply_migrations(db)  # a third application changes nothing
    assert db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
    assert [m.name for m in MIGRATIONS.applied(db)] == [m.name for m in MIGRATIONS._migrations]
    assert len(MIGRATIONS._migrations) == 10
    assert MIGRATIONS.pending(db) == []
    assert {"jobs", "quota_ledger", "policy_defaults", "policy_blocked"} <= set(db.table_names())
    assert "backend_costs" in db.view_names()


async def test_lifecycle_settle_charges_delivered_and_refunds_rest(store: Store) -> None:
    job = await store.submit_job(new_job(images=4))
    assert (job.state, job.images_reserved) == ("queued", 4)
    running = await store.mark_running(job.id, "req-1")
    assert (running.state, running.backend_ref) == ("running", "req-1")
    assert running.started_at is not None
    done = await store.settle(job.id, delivered=2, withheld=1, billed=3)
    assert (done.state, done.images_delivered, done.images_withheld) == ("delivered", 2, 1)
    assert done.finished_at is not None
    balance = await store.ledger_balance(job.id)
    assert (balance.reserved, balance.charged, balance.refunded) == (4, 2, 2)
    # The backend billed the withheld image too; that is recorded apart from the user's quota.
    assert await store.backend_cost(job.id) == ("billed", 3)
    status = await store.quota_status(42, 7)
    assert (status.used, status.reserved, status.remaining) == (2, 0, 23)


async def test_replayed_operations_change_nothing(store: Store) -> None:
    first = await store.submit_job(new_job(images=2, interaction_id=777))
    replay = await store.submit_job(new_job(images=2, interaction_id=777))
    assert replay.id == first.id
    assert (first.replayed, replay.replayed) == (False, True)
    assert (await store.quota_status(42, 7)).reserved == 2
    await store.settle(first.id, delivered=1, billed=1)
    again = await store.settle(first.id, delivered=2, billed=2)
    assert again.images_delivered == 1
    failed = await store.fail(first.id, "late error", billed=None)
    assert failed.state == "delivered" and failed.error is None
    balance = await store.ledger_balance(first.id)
    assert (balance.reserved, balance.charged, balance.refunded) == (2, 1, 1)
    assert await store.backend_cost(first.id) == ("billed", 1)
    # A submit replayed after settlement still returns the same job and reserves nothing.
    assert (await store.submit_job(new_job(images=2, interaction_id=777))).id == first.id
    status = await store.quota_status(42, 7)
    assert (status.used, status.reserved) == (1, 0)


async def test_fail_refunds_everything_and_replays_do_nothing(store: Store) -> None:
    job = await store.submit_job(new_job(images=3))
    await store.mark_running(job.id)
    failed = await store.fail(job.id, "backend said 500", billed=0)
    assert (failed.state, failed.error) == ("failed", "backend said 500")
    await store.fail(job.id, "again", state="unknown")
    await store.settle(job.id, delivered=3)
    balance = await store.ledger_balance(job.id)
    assert (balance.reserved, balance.charged, balance.refunded) == (3, 0, 3)
    assert (await store.get_job(job.id)).state == "failed"
    assert (await store.quota_status(42, 7)).remaining == 25
    assert await store.backend_cost(job.id) == ("billed", 0)


async def test_unknown_outcome_records_unknown_cost(store: Store) -> None:
    job = await store.submit_job(new_job(images=2))
    await store.mark_running(job.id)
    out = await store.fail(job.id, "timed out after sending", state="unknown", billed=None)
    assert out.state == "unknown"
    assert await store.backend_cost(job.id) == ("unknown", None)
    assert (await store.quota_status(42, 7)).remaining == 25


async def test_cancelled_job_is_not_started(store: Store) -> None:
    job = await store.submit_job(new_job(images=2))
    await store.fail(job.id, "cancelled by the user", state="cancelled", billed=0)
    after = await store.mark_running(job.id, "late")
    assert after.state == "cancelled" and after.backend_ref is None
    with pytest.raises(ValueError, match="failed, cancelled, unknown"):
        await store.fail(job.id, "x", state="delivered")


async def test_settle_never_charges_more_than_reserved(store: Store) -> None:
    job = await store.submit_job(new_job(images=2))
    await store.settle(job.id, delivered=5, billed=5)
    balance = await store.ledger_balance(job.id)
    assert (balance.reserved, balance.charged, balance.refunded) == (2, 2, 0)


async def test_bad_values_are_one_sentence(store: Store) -> None:
    with pytest.raises(
        InvalidRequest, match="number of images must be a whole number of at least 1"
    ):
        await store.submit_job(new_job(images=0))
    job = await store.submit_job(new_job())
    with pytest.raises(InvalidRequest, match="Delivered images"):
        await store.settle(job.id, delivered=-1)
    with pytest.raises(JobNotFound, match=r"There is no job 999\."):
        await store.get_job(999)
    with pytest.raises(JobNotFound):
        await store.settle(999, delivered=1)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        await store.submit_job(new_job(input_key="../../etc/passwd"))


async def test_messages_find_their_job(store: Store) -> None:
    job = await store.submit_job(new_job())
    await store.settle(job.id, delivered=1, billed=1)
    await store.record_messages(job.id, [1001, 1002], channel_id=55)
    again = await store.record_messages(job.id, [1002, 1003], channel_id=55)
    assert again.message_ids == (1001, 1002, 1003)
    assert again.message_channel_id == 55
    assert (await store.job_for_message(1003)).id == job.id
    assert await store.job_for_message(4242) is None


async def test_list_jobs_filters_newest_first(store: Store) -> None:
    a = await store.submit_job(new_job(user_id=1))
    b = await store.submit_job(new_job(user_id=2))
    c = await store.submit_job(new_job(user_id=1))
    await store.settle(a.id, delivered=1)
    assert [j.id for j in await store.list_jobs()] == [c.id, b.id, a.id]
    assert [j.id for j in await store.list_jobs(user_id=1)] == [c.id, a.id]
    assert [j.id for j in await store.list_jobs(state="queued")] == [c.id, b.id]
    assert [j.id for j in await store.list_jobs(limit=1)] == [c.id]
    for j in (b, c):
        await store.fail(j.id, "test over", billed=0)


async def test_submitted_job_is_exactly_what_was_stored(store: Store) -> None:
    # submit_job builds its Job without reading the row back: it must equal the stored row.
    parent = await store.submit_job(new_job())
    variants = [
        new_job(guild_id=None),
        new_job(input_key="a" * 64, style_ref_keys=("b" * 64, "c" * 64)),
        new_job(kind="reroll", parent_job_id=parent.id, interaction_id=None),
    ]
    odd = new_job()
    variants.append(
        dataclasses.replace(
            odd, request={"z": (1, 2), "when": datetime(2026, 1, 1, tzinfo=UTC), "a": None}
        )
    )
    # Ids that are not ints yet (strings from JSON, floats) are stored, and returned, as ints.
    variants.append(
        dataclasses.replace(
            new_job(), interaction_id="900", guild_id="7", channel_id=55.0, user_id="42"
        )
    )
    for new in variants:
        job = await store.submit_job(new)
        assert job == await store.get_job(job.id)
        assert job.request == (await store.get_job(job.id)).request
        await store.settle(job.id, delivered=0)


async def _until_nothing_reserved(store: Store) -> None:
    """The undo of a cancelled submit runs when the writer answers: wait for it (bounded).

    The writer makes the job whatever happens to its caller, so the job ends cancelled; with
    PostgreSQL a read on another connection can even run before the job is made.
    """
    for _ in range(250):
        if [j.state for j in await store.list_jobs()] == ["cancelled"]:
            return
        await asyncio.sleep(0.02)


async def test_a_cancelled_submit_leaves_nothing_reserved(store: Store) -> None:
    # Ctrl-C or a shutdown while the call waits for the writer: the writer still creates the job.
    task = asyncio.create_task(store.submit_job(new_job(images=4)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _until_nothing_reserved(store)
    assert (await store.quota_status(42, 7)).reserved == 0
    assert [j.state for j in await store.list_jobs()] in ([], ["cancelled"])


async def test_a_submit_cancelled_twice_still_leaves_nothing_reserved(store: Store) -> None:
    task = asyncio.create_task(store.submit_job(new_job(images=4)))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)  # now waiting for the writer to undo it…
    task.cancel()  # …and cancelled again
    with pytest.raises(asyncio.CancelledError):
        await task
    await _until_nothing_reserved(store)
    assert (await store.quota_status(42, 7)).reserved == 0
    assert [j.state for j in await store.list_jobs()] in ([], ["cancelled"])


async def test_ids_that_are_not_numbers_are_refused(store: Store) -> None:
    with pytest.raises(InvalidRequest, match="user_id must be a whole number, not 'alice'"):
        await store.submit_job(dataclasses.replace(new_job(), user_id="alice"))


async def test_a_file_from_0003_upgrades_in_place(tmp_path: Path) -> None:
    # A database written by the first three migrations keeps its jobs, inputs, bills and books.
    from sqlite_utils.migrations import Migrations

    db_path = tmp_path / "remixbot.sqlite3"
    old = Migrations("remixbot.store")
    for m in MIGRATIONS._migrations[:3]:
        old(name=m.name)(m.fn)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    old.apply(Database(conn))
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    for _ in range(2):
        conn.execute(
            "INSERT INTO jobs (guild_id, scope, user_id, kind, input_key, style_ref_keys, state,"
            " created_at, backend, images_requested, images_reserved)"
            " VALUES (7, 7, 42, 'remix', ?, ?, 'queued', ?, 'ideogram', 2, 2)",
            ("a" * 64, f'["{"b" * 64}"]', now),
        )
    conn.execute(
        "UPDATE jobs SET state = 'delivered', finished_at = ?, images_delivered = 2,"
        " images_billed = 3 WHERE id = 2",
        (now,),
    )
    # As before 0003, when the bill was kept only in the table.
    conn.execute("UPDATE jobs SET images_billed = NULL WHERE id = 2")
    conn.close()
    async with await Store.open(db_path, defaults=QuotaDefaults(limit=25)) as s:
        # A terminal job (no channel) of a process long gone: closed as the store opened,
        # found through the new open-jobs index.
        assert s.reconciled_at_open.failed == (1,)
        assert await s.backend_cost(1) == ("billed", 0)
        assert await s.backend_cost(2) == ("billed", 3)  # carried over from the old table
        fresh = await s.submit_job(new_job(images=1, input_key="c" * 64))
        assert fresh.state == "queued" and (await s.quota_status(42, 7)).reserved == 1
        assert await s.backend_cost(fresh.id) is None
        await s.settle(fresh.id, delivered=1, billed=1)
        assert await s.backend_cost(fresh.id) == ("billed", 1)
        assert await s.check_books() == []
    conn = sqlite3.connect(db_path)
    refs = conn.execute("SELECT job_id, key FROM job_inputs ORDER BY job_id, key").fetchall()
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    old_refs = [(1, "a" * 64), (1, "b" * 64), (2, "a" * 64), (2, "b" * 64)]
    assert refs == [*old_refs, (fresh.id, "c" * 64)]
    assert "jobs_open" in indexes and "jobs_state" not in indexes


async def test_reconcile_leaves_the_jobs_of_a_running_process_alone(
    database: Path | str, tmp_path: Path
) -> None:
    # `remixbot remix` is mid-job when the bot starts on the same books: its job is not closed.
    db, kw = database, {"defaults": QuotaDefaults(limit=25), "data_dir": tmp_path}
    async with await Store.open(db, **kw) as cli:
        job = await cli.submit_job(new_job(images=2))
        await cli.mark_running(job.id, "req-1")
        async with await Store.open(db, **kw) as bot:
            report = await bot.reconcile(claim_discord_jobs=True)
            assert (report.elsewhere, report.touched) == ((job.id,), 0)
            await cli.settle(job.id, delivered=2, billed=2)
            assert (await bot.get_job(job.id)).state == "delivered"  # charged, as delivered
        left = await cli.submit_job(new_job(images=1))
    # The CLI is gone with a job still open (as a crash leaves it): now it is reconciled.
    async with await Store.open(db, **kw) as bot:
        assert [j.id for j in (await bot.reconcile(claim_discord_jobs=True)).requeue] == [left.id]
        await bot.fail(left.id, "test over", billed=0)
        status = await bot.quota_status(42, 7)
        assert (status.used, status.reserved) == (2, 0)
        assert await bot.check_books() == []


async def test_ledger_is_append_only(database: Path | str, tmp_path: Path) -> None:
    async with await Store.open(database, defaults=QuotaDefaults(), data_dir=tmp_path) as s:
        await s.submit_job(new_job())
    with pytest.raises(Exception, match="append-only"):
        execute(database, "UPDATE quota_ledger SET amount = 0")
    with pytest.raises(Exception, match="append-only"):
        execute(database, "DELETE FROM quota_ledger")
    execute(database, "UPDATE jobs SET state = 'failed', finished_at = created_at")
    assert execute(database, "SELECT kind, amount FROM quota_ledger ORDER BY id") == [
        ("reserve", 1),
        ("settle", 0),
        ("refund", 1),
    ]
    with pytest.raises(Exception, match="a final job cannot change state"):
        execute(database, "UPDATE jobs SET state = 'delivered'")


async def test_writes_wait_off_the_loop_and_fail_cleanly_when_busy(tmp_path: Path) -> None:
    db = tmp_path / "remixbot.sqlite3"
    async with await Store.open(db, defaults=QuotaDefaults(), busy_timeout=0.6) as s:
        holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
        release.start()
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.perf_counter()
            for _ in range(400):
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        job = await asyncio.wait_for(s.submit_job(new_job()), 10)  # waits for the lock
        await tick
        release.join(5)
        assert job.state == "queued"
        # The loop kept ticking while the write waited: no gap near the lock's 0.3 s (a busy
        # machine may hold up one tick for a tenth of a second; that is not a blocked loop).
        assert max(gaps) < 0.2
        # Held past the busy timeout: a clean StoreBusy and nothing half-written.
        holder.execute("BEGIN IMMEDIATE")
        try:
            started = time.perf_counter()
            with pytest.raises(StoreBusy, match="busy; nothing was changed"):
                await asyncio.wait_for(s.submit_job(new_job()), 10)
            assert 0.5 < time.perf_counter() - started < 5
        finally:
            holder.execute("COMMIT")
            holder.close()
        assert len(await s.list_jobs()) == 1
        assert await s.check_books() == []


def _key(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


async def test_input_store_roundtrip(tmp_path: Path) -> None:
    inputs = InputStore(tmp_path)
    key = await inputs.put(b"image bytes")
    assert key == _key(b"image bytes")
    assert await inputs.put(b"image bytes") == key
    assert await inputs.get(key) == b"image bytes"
    assert inputs.path(key).parent.parent == tmp_path / "inputs"
    assert await inputs.delete(key) is True
    assert await inputs.get(key) is None
    assert await inputs.delete(key) is False
    with pytest.raises(ValueError):
        inputs.path("../x")


def _age(inputs: InputStore, key: str, days: float) -> None:
    t = time.time() - days * 86400
    os.utime(inputs.path(key), (t, t))


async def test_sweep_deletes_inputs_only_used_by_old_jobs(store: Store) -> None:
    inputs = store.inputs
    now = datetime.now(UTC)
    old_key = await inputs.put(b"old input")
    shared_key = await inputs.put(b"old but reused")
    new_key = await inputs.put(b"new input")
    orphan_new = await inputs.put(b"input of a job still open")
    fresh = await inputs.put(b"uploaded just now, job not yet created")
    for k in (old_key, shared_key):
        _age(inputs, k, 40)
    then = now - timedelta(days=40)
    old = await store.submit_job(new_job(input_key=old_key), now=then)
    old2 = await store.submit_job(
        new_job(input_key=shared_key, style_ref_keys=(old_key,)), now=then
    )
    for job in (old, old2):
        await store.settle(job.id, delivered=1, billed=1, now=then)
    # Open jobs keep their inputs whatever their age (a reroll or resume may still need them).
    open_old = await store.submit_job(new_job(input_key=orphan_new), now=then)
    _age(inputs, orphan_new, 40)
    recent = await store.submit_job(new_job(style_ref_keys=(shared_key,), input_key=new_key))
    assert await store.sweep_inputs(now) == 1
    assert await inputs.get(old_key) is None
    assert await inputs.get(shared_key) == b"old but reused"
    assert await inputs.get(new_key) == b"new input"
    assert await inputs.get(orphan_new) is not None
    assert await inputs.get(fresh) is not None
    assert (await store.get_job(old.id)).input_key == old_key  # the job remembers; file is gone
    for job in (open_old, recent):
        await store.fail(job.id, "test over", billed=0)
    # Once the old job is final its input goes too; an unreferenced old upload goes as well.
    assert await store.sweep_inputs(now) == 1
    assert await inputs.get(orphan_new) is None


async def test_forget_deletes_personal_data_and_keeps_counts(store: Store) -> None:
    inputs = store.inputs
    mine = await inputs.put(b"only mine")
    shared = await inputs.put(b"also used by someone else")
    a = await store.submit_job(new_job(user_id=5, images=2, input_key=mine, prompt="my secret"))
    await store.settle(a.id, delivered=2, billed=2)
    await store.record_messages(a.id, [9001], channel_id=55)
    b = await store.submit_job(new_job(user_id=5, input_key=shared))
    await store.fail(b.id, "x", billed=0)
    other = await store.submit_job(new_job(user_id=6, input_key=shared))
    await store.settle(other.id, delivered=1, billed=1)

    report = await store.forget(5)
    assert (report.jobs, report.inputs_deleted) == (2, 1)
    assert report.ledger_rows >= 4
    assert await inputs.get(mine) is None
    assert await inputs.get(shared) is not None
    job = await store.get_job(a.id)
    assert job.user_id == ANON_USER_ID
    assert "prompt" not in job.request and job.request["seed"] == 12
    assert (job.input_key, job.message_ids, job.interaction_id) == (None, (), None)
    assert (job.images_delivered, job.state) == (2, "delivered")  # anonymous counts kept
    assert await store.job_for_message(9001) is None
    assert await store.list_jobs(user_id=5) == []
    assert (await store.get_job(other.id)).user_id == 6
    assert await store.forget(5) == type(report)(jobs=0, ledger_rows=0, inputs_deleted=0)


def test_db_refuses_old_sqlite_version_message() -> None:
    # The version gate's sentence names the minimum (checked without monkeypatching sqlite3).
    from bot.store import db

    assert db.MIN_SQLITE == (3, 35, 0)
    assert sqlite3.sqlite_version_info >= db.MIN_SQLITE
    assert db.Db.__doc__


async def test_check_books_detects_a_tampered_summary(database: Path | str, tmp_path: Path) -> None:
    db, kw = database, {"defaults": QuotaDefaults(), "data_dir": tmp_path}
    async with await Store.open(db, **kw) as s:
        job = await s.submit_job(new_job(images=2))
        await s.settle(job.id, delivered=1)
        assert await s.check_books() == []
    execute(db, "UPDATE quota_usage SET settled = settled + 1")
    execute(db, "UPDATE jobs SET images_reserved = 3")
    async with await Store.open(db, **kw) as s:
        problems = await s.check_books()
    assert any("quota_usage differs" in p for p in problems)
    assert any(f"job {job.id}: reserved 3 but the ledger reserved 2" in p for p in problems)


async def test_group_commit_isolates_each_call(database: Path | str, tmp_path: Path) -> None:
    # Many calls queued at once share one transaction (SQLite) or run side by side on several
    # connections (PostgreSQL); a refused call changes nothing, and each user's limit holds.
    kw = {"defaults": QuotaDefaults(limit=3), "data_dir": tmp_path}
    async with await Store.open(database, **kw) as s:
        calls = [s.submit_job(new_job(user_id=u % 4, images=2)) for u in range(40)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        ok = [r for r in results if not isinstance(r, BaseException)]
        assert len(ok) == 4  # one job of 2 per user fits a limit of 3
        assert sorted(j.user_id for j in ok) == [0, 1, 2, 3]
        settled = await asyncio.gather(*(s.settle(j.id, delivered=1) for j in ok))
        assert all(j.state == "delivered" for j in settled)
        assert await s.check_books() == []
        assert len(await s.list_jobs()) == 4

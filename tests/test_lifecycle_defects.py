"""The job's exits under a busy database, a paid task whose id cannot be saved, and rerolls that
must reuse their stored input: each failed on the code before the one lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NoReturn

import pytest

import bot.lifecycle as lifecycle_mod
from bot.intake import ImagePool
from bot.jobs import Scheduler
from bot.lifecycle import Exit
from bot.remix.backends import make_backend
from bot.remix.download import make_download_session
from bot.settings import load_settings
from bot.store import QuotaDefaults, Store
from bot.store.errors import StoreBusy
from bot.workflow import RemixService, Requester
from tests.fakediscord.helpers import png_bytes
from tests.fakeremix import FakeRemix
from tests.fakeremix.helpers import fake_env
from tests.test_lifecycle_exits import RecordingPresenter, harness


class WriteLock:
    """Another connection holding the database's write lock (as another process would)."""

    def __init__(self, db: Path, seconds: float) -> None:
        self.db = db
        self.seconds = seconds
        self.taken = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        conn = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.taken.set()
            time.sleep(self.seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def start(self) -> None:
        self._thread.start()
        assert self.taken.wait(10)

    def join(self) -> None:
        self._thread.join(20)


async def _until(check, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def quick_store(h, busy_timeout: float) -> AsyncIterator[Store]:  # type: ignore[no-untyped-def]
    """The harness's lifecycle on a store that gives up on a lock after `busy_timeout`."""
    async with await Store.open(
        h.data / "remixbot.sqlite3", defaults=QuotaDefaults(limit=20), busy_timeout=busy_timeout
    ) as quick:
        h.lifecycle.store = quick
        yield quick


async def _closed_as(store: Store, job_id: int, state: str, refunded: int) -> None:
    """Wait (bounded) until the job is closed in `state`, refunded in full and charged nothing."""

    async def closed() -> bool:
        return (await store.get_job(job_id)).state == state

    await _until(closed, 15)
    balance = await store.ledger_balance(job_id)
    assert (balance.charged, balance.refunded) == (0, refunded)


async def test_a_busy_database_after_posting_never_unposts_the_result(
    tmp_path: Path, fake: FakeRemix
) -> None:
    """Defect 1: the lock is held while the quota line is read and while the books are written,
    longer than the store's busy timeout. The result stays posted and is charged later."""
    async with harness(tmp_path, fake) as h:
        db_path = h.data / "remixbot.sqlite3"
        # A store whose writes give up quickly, so the first settle really fails.
        async with await Store.open(
            db_path, defaults=QuotaDefaults(limit=20), busy_timeout=0.3
        ) as quick:
            h.lifecycle.store = quick
            job, task = await h.job(images=2)
            lock = WriteLock(db_path, 3.0)

            def stage(name: str) -> None:
                if name == "uploading":
                    lock.start()  # the database is locked from here on

            presenter = RecordingPresenter()
            posted = await h.lifecycle.run(job, task, presenter, stage=stage)
            assert posted is not None and posted.images == 2
            assert presenter.endings == []  # never told "could not be posted"
            assert await asyncio.to_thread(lambda: (db_path.parent / "posted").exists())
            lock.join()

            async def settled() -> bool:
                return (await quick.get_job(job.id)).state == "delivered"

            await _until(settled, 30)
            final = await quick.get_job(job.id)
            assert final.message_ids == (1000 + job.id,)
            assert (await quick.ledger_balance(job.id)).charged == 2
            assert not list((h.data / "posted").glob("*.json"))  # the journal is done with
            assert not (h.data / "undelivered").exists()
            await h.lifecycle.close()


class BusyQuotaStore(Store):
    """The real store, except that reading a quota finds the database busy (as a read grouped
    with a write that waits on another process's lock does)."""

    async def quota_status(self, *args: object, **kwargs: object) -> NoReturn:
        raise StoreBusy()


async def test_a_busy_quota_read_leaves_the_line_out_and_posts(
    tmp_path: Path, fake: FakeRemix
) -> None:
    """Defect 1, the embed line: the result is posted without "images left", and charged."""
    async with harness(tmp_path, fake) as h:
        async with await BusyQuotaStore.open(
            h.data / "remixbot.sqlite3", defaults=QuotaDefaults(limit=20)
        ) as busy:
            h.lifecycle.store = busy
            job, task = await h.job()
            presenter = RecordingPresenter()
            posted = await h.lifecycle.run(job, task, presenter)
            assert posted is not None and presenter.endings == []
            assert presenter.outcomes[0].quota_known is False
            assert (await busy.get_job(job.id)).state == "delivered"


async def test_a_task_id_that_cannot_be_saved_never_invites_a_second_payment(
    tmp_path: Path, fake: FakeRemix, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 2: saving the task id fails after the paid submit. The job carries on (only
    resuming after a crash is lost) and the task is submitted once."""
    monkeypatch.setattr(lifecycle_mod, "SAVE_RETRY_DELAYS", (0.05, 0.05))
    fake.api_delay = 0.6  # the submit is recorded, then answered 0.6 s later
    async with harness(tmp_path, fake, "task-proxy") as h:
        db_path = h.data / "remixbot.sqlite3"
        async with await Store.open(
            db_path, defaults=QuotaDefaults(limit=20), busy_timeout=0.1
        ) as quick:
            h.lifecycle.store = quick
            job, task = await h.job()
            lock = WriteLock(db_path, 1.5)

            async def lock_at_submit() -> None:
                for _ in range(1000):  # bounded: 10 s
                    if fake.api_requests():
                        break
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(lock.start)

            locker = asyncio.create_task(lock_at_submit())
            presenter = RecordingPresenter()
            posted = await asyncio.wait_for(h.lifecycle.run(job, task, presenter), 30)
            await locker
            lock.join()
            final = await quick.get_job(job.id)
            assert posted is not None and posted.images == 1, presenter.endings
            assert [e.exit for e in presenter.endings] == []
            assert final.state == "delivered"
            assert len(fake.api_requests()) == 1  # submitted once
            await h.lifecycle.close()


async def test_an_error_after_the_submit_is_outcome_unknown(
    tmp_path: Path, fake: FakeRemix
) -> None:
    """Defect 2, the other half: once the task was accepted, a failure is never 'not charged,
    try again' (it may have been billed)."""
    fake.fail_next("500", target="poll", times=50)
    async with harness(tmp_path, fake, "task-proxy") as h:
        job, task = await h.job()
        presenter = RecordingPresenter()
        await asyncio.wait_for(h.lifecycle.run(job, task, presenter), 30)
        final = await h.store.get_job(job.id)
        assert final.state == "unknown"
        assert [e.exit for e in presenter.endings] == [Exit.UNKNOWN]


async def test_a_reroll_reuses_the_stored_input_byte_for_byte(
    tmp_path: Path, fake: FakeRemix
) -> None:
    """Defect 6: no second intake: the same content key, the same bytes sent, one stored file."""
    settings = load_settings(fake_env(fake, REMIXBOT_DATA_DIR=str(tmp_path / "data")), dotenv=None)
    settings.data_dir.mkdir(parents=True)
    import aiohttp

    async with (
        aiohttp.ClientSession() as api,
        make_download_session(lifecycle_mod.DownloadPolicy.from_settings(settings)) as downloads,
        ImagePool() as pool,
        await Store.from_settings(settings) as store,
    ):
        scheduler = Scheduler.from_settings(settings)
        service = RemixService(
            settings,
            store=store,
            pool=pool,
            backend=make_backend(settings, api),
            download_session=downloads,
            scheduler=scheduler,
        )
        who = Requester(user_id=42, guild_id=7, channel_id=55, interaction_id=1)
        request = service.build_request(prompt="a cat", image_weight=60)
        first = await service.remix(who, request, png_bytes(900, 700), [], RecordingPresenter())
        assert first is not None and await first.wait_done(20)
        parent = await store.get_job(int(first.job_id))
        stored = await store.inputs.get(parent.input_key)
        again = Requester(user_id=43, guild_id=7, channel_id=55, interaction_id=2)
        second = await service.reroll(again, parent.id, RecordingPresenter())
        assert second is not None and await second.wait_done(20)
        child = await store.get_job(int(second.job_id))
        assert child.state == "delivered" and child.kind == "reroll"
        assert child.input_key == parent.input_key
        sent = [r.files["image"][0].data for r in fake.api_requests()]
        assert sent[1] == stored  # exactly the stored bytes, not a re-encode of them
        assert child.request["image_weight"] == 60 and child.request.get("seed") is None
        scheduler.close()
        await service.close()


class SlowPostPresenter(RecordingPresenter):
    """Posts, but its upload takes a while (a slow second message, a rate limit)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.started = asyncio.Event()

    async def deliver(self, outcome):  # type: ignore[no-untyped-def]
        self.started.set()
        await asyncio.sleep(self.seconds)
        return await super().deliver(outcome)


async def test_a_stop_while_posting_lets_the_post_finish_and_charges_it(
    tmp_path: Path, fake: FakeRemix
) -> None:
    """A time limit or a clean stop that lands while the results are being posted must not turn
    a posted result into "could not be posted" (refunded, moved to undelivered/)."""
    async with harness(tmp_path, fake) as h:
        job, task = await h.job(images=2)
        presenter = SlowPostPresenter(1.0)
        run = asyncio.create_task(h.lifecycle.run(job, task, presenter))
        await asyncio.wait_for(presenter.started.wait(), 20)
        run.cancel()  # what the scheduler's time limit and a stop's drain do
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, 20)
        final = await h.store.get_job(job.id)
        assert final.state == "delivered" and presenter.endings == []
        assert (await h.store.ledger_balance(job.id)).charged == 2
        assert not (h.data / "undelivered").exists()


async def test_a_busy_database_when_a_job_closes_still_closes_it_and_tells(
    tmp_path: Path, fake: FakeRemix
) -> None:
    """Another process holds the write lock past the busy timeout just as the backend refuses
    the job: the close is retried, the job ends refunded, and its member is told."""
    fake.api_delay = 1.0
    fake.fail_next("422")  # a `rejected` exit: refund
    async with harness(tmp_path, fake) as h, quick_store(h, 0.3) as quick:
        job, task = await h.job(images=2)
        presenter = RecordingPresenter()
        run = asyncio.create_task(h.lifecycle.run(job, task, presenter))
        await _until(lambda: _running(quick, job.id), 10)
        lock = WriteLock(h.data / "remixbot.sqlite3", 2.0)  # held past the busy timeout
        await asyncio.to_thread(lock.start)
        await asyncio.wait_for(run, 30)
        lock.join()
        await _closed_as(quick, job.id, "failed", 2)
        assert [e.exit for e in presenter.endings] == [Exit.REJECTED]
        await h.lifecycle.close()


async def _running(store: Store, job_id: int) -> bool:
    return (await store.get_job(job_id)).state == "running"


async def test_a_job_stopped_while_waiting_after_a_429_never_ran(
    tmp_path: Path, fake: FakeRemix
) -> None:
    """The backend refused it for its in-flight limit (not run, not billed) and it is waiting
    for a place: a stop then is `not-started`, not "it may have run"."""
    fake.fail_next("429", times=100, retry_after="30")
    async with harness(tmp_path, fake) as h:
        job, task = await h.job()
        presenter = RecordingPresenter()
        run = asyncio.create_task(h.lifecycle.run(job, task, presenter))
        await _until(lambda: _asked(fake), 10)
        await asyncio.sleep(0.2)  # now waiting out the Retry-After
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, 10)
        final = await h.store.get_job(job.id)
        assert final.state == "cancelled" and await h.store.backend_cost(job.id) == ("billed", 0)
        assert [e.exit for e in presenter.endings] == [Exit.NOT_STARTED]


async def _asked(fake: FakeRemix) -> bool:
    return bool(fake.api_requests())


async def test_a_job_that_cannot_be_marked_running_is_handed_back_refunded(
    tmp_path: Path, fake: FakeRemix, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database stays locked through every try to mark the job running: nothing is sent to
    the backend, the member is told it was not started, and the job ends refunded once the
    database frees (not held open until the next start)."""
    monkeypatch.setattr(lifecycle_mod, "SAVE_RETRY_DELAYS", (0.05, 0.05))
    async with harness(tmp_path, fake) as h, quick_store(h, 0.1) as quick:
        job, task = await h.job(images=2)
        presenter = RecordingPresenter()
        lock = WriteLock(h.data / "remixbot.sqlite3", 2.0)
        await asyncio.to_thread(lock.start)
        assert await asyncio.wait_for(h.lifecycle.run(job, task, presenter), 10) is None
        assert [e.exit for e in presenter.endings] == [Exit.NOT_STARTED]
        assert isinstance(presenter.endings[0].error, StoreBusy)
        assert fake.api_requests() == []  # nothing paid was sent
        lock.join()
        await _closed_as(quick, job.id, "cancelled", 2)
        await h.lifecycle.close()

"""Every exit of the job lifecycle, walked through the real code: a real store, the fake remix
server on 127.0.0.1, real Pillow; the table in bot/lifecycle.py (and docs/architecture.md) is
what each row is checked against."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from bot.intake import ImagePool, IntakeLimits
from bot.jobs import Progress
from bot.lifecycle import (
    EXITS,
    Ending,
    Exit,
    JobLifecycle,
    JobTask,
    Outcome,
    Posted,
    exit_table,
)
from bot.remix.backends import make_backend
from bot.remix.download import DownloadPolicy, make_download_session
from bot.remix.request import RemixRequest
from bot.settings import load_settings
from bot.store import NewJob, QuotaDefaults, Store
from bot.store.models import PostedRecord
from tests.fakediscord.helpers import png_bytes
from tests.fakeremix import FakeRemix
from tests.fakeremix.helpers import fake_env

ROOT = Path(__file__).resolve().parent.parent
USER, GUILD, CHANNEL = 42, 7, 55


@dataclass
class RecordingPresenter:
    """A real presenter that keeps what it was shown; `post` says how many images it posts."""

    post: int | None = None  # None: all of them; 0 raises (nothing could be posted)
    outcomes: list[Outcome] = field(default_factory=list)
    endings: list[Ending] = field(default_factory=list)

    async def progress(self, progress: Progress) -> None:
        """Nothing to show."""

    async def deliver(self, outcome: Outcome) -> Posted:
        """'Post' the images by counting them."""
        self.outcomes.append(outcome)
        n = len(outcome.delivery.images) if self.post is None else self.post
        if n == 0:
            raise RuntimeError("the channel refused the upload")
        return Posted((1000 + outcome.job.id,), CHANNEL, n)

    async def end(self, ending: Ending) -> None:
        """Keep the ending."""
        self.endings.append(ending)


@dataclass
class Harness:
    store: Store
    lifecycle: JobLifecycle
    pool: ImagePool
    data: Path
    fake: FakeRemix

    async def job(self, images: int = 1, *, channel: int | None = CHANNEL) -> tuple:
        prepared = await self.pool.prepare(png_bytes(), aspect_ratio=None, limits=IntakeLimits())
        request = RemixRequest(prompt="a cat", num_images=images)
        job = await self.lifecycle.reserve(
            NewJob(
                interaction_id=None,
                guild_id=GUILD,
                channel_id=channel,
                user_id=USER,
                kind="remix",
                parent_job_id=None,
                request=request.to_dict(),
                input_key=None,
                style_ref_keys=(),
                backend=self.lifecycle.backend.name,
                images=images,
            )
        )
        return job, JobTask(request, prepared.image)

    async def charged(self, job_id: int) -> int:
        return (await self.store.ledger_balance(job_id)).charged


@contextlib.asynccontextmanager
async def harness(
    tmp_path: Path, fake: FakeRemix, backend: str = "ideogram"
) -> AsyncIterator[Harness]:
    settings = load_settings(
        fake_env(fake, backend, REMIXBOT_DATA_DIR=str(tmp_path / "data")), dotenv=None
    )
    policy = DownloadPolicy.from_settings(settings)
    async with (
        aiohttp.ClientSession() as api,
        make_download_session(policy) as downloads,
        ImagePool() as pool,
        await Store.open(settings.db_path, defaults=QuotaDefaults(limit=20)) as store,
    ):
        lifecycle = JobLifecycle(
            store=store,
            backend=make_backend(settings, api),
            download_session=downloads,
            policy=policy,
            verify=pool.check_result,
            work_dir=settings.data_dir / "work",
            undelivered_dir=settings.data_dir / "undelivered",
        )
        yield Harness(store, lifecycle, pool, settings.data_dir, fake)
        await lifecycle.close()


def kept(data: Path, job_id: int) -> list[str]:
    folder = data / "undelivered" / f"job-{job_id}"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def assert_rule(exit_: Exit, job, charged: int, posted: int, billed_recorded) -> None:
    """The job ended as the exit table says."""
    rule = EXITS[exit_]
    assert job.state == rule.state, (exit_, job.state, job.error)
    assert charged == (posted if rule.charged == "the images posted" else 0)
    if rule.billed == "unknown":
        assert billed_recorded == ("unknown", None)
    elif rule.billed == "nothing":
        assert billed_recorded == ("billed", 0)


async def test_delivered(tmp_path: Path, fake: FakeRemix) -> None:
    async with harness(tmp_path, fake) as h:
        job, task = await h.job(images=2)
        presenter = RecordingPresenter()
        posted = await h.lifecycle.run(job, task, presenter)
        final = await h.store.get_job(job.id)
        assert posted is not None and posted.images == 2 and not presenter.endings
        assert_rule(Exit.DELIVERED, final, await h.charged(job.id), 2, None)
        assert final.message_ids == (1000 + job.id,)
        assert await h.store.backend_cost(job.id) == ("billed", 2)
        assert not (h.data / "work" / f"job-{job.id}").exists()


async def test_partly_posted_keeps_the_rest(tmp_path: Path, fake: FakeRemix) -> None:
    async with harness(tmp_path, fake) as h:
        job, task = await h.job(images=3)
        await h.lifecycle.run(job, task, RecordingPresenter(post=1))
        final = await h.store.get_job(job.id)
        assert_rule(Exit.DELIVERED, final, await h.charged(job.id), 1, None)
        assert len(kept(h.data, job.id)) == 2  # paid for, not posted: kept for the admin


@pytest.mark.parametrize("mode", ["unsafe", "expired", "damaged"])
async def test_nothing_delivered_is_failed_and_billed(
    tmp_path: Path, fake: FakeRemix, mode: str
) -> None:
    """Defect 4: a job that delivered nothing ends failed with its reason, billed as billed."""
    if mode == "unsafe":
        fake.unsafe = {0, 1}
    elif mode == "expired":
        fake.image_mode = "expired"
    else:
        fake.damaged = {0, 1}
    async with harness(tmp_path, fake) as h:
        job, task = await h.job(images=2)
        presenter = RecordingPresenter()
        assert await h.lifecycle.run(job, task, presenter) is None
        final = await h.store.get_job(job.id)
        assert_rule(Exit.NOTHING_DELIVERED, final, await h.charged(job.id), 0, None)
        assert final.error and final.images_delivered == 0
        assert await h.store.backend_cost(job.id) == ("billed", 2)
        assert [e.exit for e in presenter.endings] == [Exit.NOTHING_DELIVERED]
        # Defect 5's last part: a result that fails its check is kept like any unposted image.
        assert len(kept(h.data, job.id)) == (2 if mode == "damaged" else 0)


async def test_not_posted(tmp_path: Path, fake: FakeRemix) -> None:
    async with harness(tmp_path, fake) as h:
        job, task = await h.job(images=2)
        presenter = RecordingPresenter(post=0)
        await h.lifecycle.run(job, task, presenter)
        final = await h.store.get_job(job.id)
        assert_rule(Exit.NOT_POSTED, final, await h.charged(job.id), 0, None)
        assert await h.store.backend_cost(job.id) == ("billed", 2)
        assert len(kept(h.data, job.id)) == 2
        assert [e.exit for e in presenter.endings] == [Exit.NOT_POSTED]


@pytest.mark.parametrize(
    ("fault", "exit_"),
    [
        ("422", Exit.REJECTED),
        ("504", Exit.UNKNOWN),
        # A 2xx whose `data` is empty ran and was billed: unknown, never "not run, try again".
        ("empty_data", Exit.UNKNOWN),
    ],
)
async def test_backend_errors(tmp_path: Path, fake: FakeRemix, fault: str, exit_: Exit) -> None:
    fake.fail_next(fault)
    async with harness(tmp_path, fake) as h:
        job, task = await h.job()
        presenter = RecordingPresenter()
        await h.lifecycle.run(job, task, presenter)
        final = await h.store.get_job(job.id)
        assert_rule(exit_, final, await h.charged(job.id), 0, await h.store.backend_cost(job.id))
        assert [e.exit for e in presenter.endings] == [exit_]


@pytest.mark.parametrize(
    ("stopping", "backend", "exit_"),
    [
        (False, "ideogram", Exit.TIMED_OUT),
        (True, "ideogram", Exit.INTERRUPTED),
        (True, "task-proxy", Exit.LEFT_FOR_RESUME),
    ],
)
async def test_cut_off_at_the_backend(
    tmp_path: Path, fake: FakeRemix, stopping: bool, backend: str, exit_: Exit
) -> None:
    fake.task_outcome = "never"  # the task proxy's task never finishes
    fake.api_delay = 0.0 if backend == "task-proxy" else 30.0
    async with harness(tmp_path, fake, backend) as h:
        h.lifecycle.stopping = stopping
        job, task = await h.job()
        presenter = RecordingPresenter()
        run = asyncio.create_task(h.lifecycle.run(job, task, presenter))
        if backend == "task-proxy":  # cut off once the task id is saved
            for _ in range(200):
                if (await h.store.get_job(job.id)).backend_ref:
                    break
                await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(0.5)
        run.cancel()  # what the scheduler's time limit and a clean stop's drain do
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, 10)
        final = await h.store.get_job(job.id)
        cost = await h.store.backend_cost(job.id)
        assert_rule(exit_, final, await h.charged(job.id), 0, cost)
        assert [e.exit for e in presenter.endings] == [exit_]
        if exit_ is Exit.LEFT_FOR_RESUME:
            assert final.backend_ref and (await h.store.ledger_balance(job.id)).reserved == 1


async def test_not_started(tmp_path: Path, fake: FakeRemix) -> None:
    async with harness(tmp_path, fake) as h:
        job, _ = await h.job()
        presenter = RecordingPresenter()
        await h.lifecycle.not_started(job.id, presenter)
        final = await h.store.get_job(job.id)
        assert_rule(
            Exit.NOT_STARTED, final, await h.charged(job.id), 0, await h.store.backend_cost(job.id)
        )
        assert [e.exit for e in presenter.endings] == [Exit.NOT_STARTED]
        assert not fake.requests


async def test_after_a_crash(tmp_path: Path, fake: FakeRemix) -> None:
    """A process that closes without closing its jobs (as a crash leaves them): the next one
    settles the posted job and closes the one lost at a synchronous backend."""
    async with harness(tmp_path, fake) as h:
        posted_job, _ = await h.job(images=2)
        lost_job, _ = await h.job()
        await h.store.mark_running(posted_job.id)
        await h.store.mark_running(lost_job.id)
        await h.store.journal_posted(PostedRecord(posted_job.id, (77,), CHANNEL, 2, 0, 2))
        db = h.store
    # The first store is closed (its owner lock released) with both jobs open.
    async with await Store.open(
        tmp_path / "data" / "remixbot.sqlite3", defaults=QuotaDefaults(limit=20)
    ) as store:
        report = await store.reconcile(resumable=(), claim_discord_jobs=True)
        settled = await store.get_job(posted_job.id)
        lost = await store.get_job(lost_job.id)
        assert_rule(
            Exit.SETTLED_AFTER_CRASH, settled, (await store.ledger_balance(settled.id)).charged,
            2, None,
        )  # fmt: skip
        assert settled.message_ids == (77,)
        assert_rule(Exit.CRASHED_AT_BACKEND, lost, 0, 0, await store.backend_cost(lost.id))
        assert [j.id for j in report.closed_unknown] == [lost.id]
        assert await store.check_books() == []
    assert db is not None


def test_the_architecture_doc_shows_the_exit_table() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert exit_table() in text

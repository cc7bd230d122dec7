"""One job's life, for the bot and the terminal alike: reserve, submit, collect, post, record,
settle — or fail, or end outcome-unknown — with the books closed on every exit.

`JobLifecycle` is the only code that decides how a job ends. Every way out is an `Exit`; `EXITS`
says, for each, the job's final state, what the member is charged, what the backend billed, what
the member sees and where the images go. docs/architecture.md shows the same table (a test keeps
the two equal) and tests/test_lifecycle_exits.py walks every row through this code.

Callers hand in a `Presenter`: the bot's posts to Discord, the terminal's saves to a folder. The
scheduler only runs the job; what the job came to is decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import aiohttp

from bot.background import Background
from bot.errors import QuotaRefused, RemixbotError, RemixError, RemixRateLimited
from bot.jobs import Progress
from bot.log import job_context
from bot.media import EncodedImage
from bot.metrics import NULL_METRICS, Metrics
from bot.remix.backends.base import Backend
from bot.remix.download import DownloadPolicy
from bot.remix.pipeline import Delivery, Verify, collect, resume_remix
from bot.remix.request import RemixRequest
from bot.store import Job, NewJob, Store
from bot.store.errors import StoreBusy
from bot.store.models import PostedRecord, ReconcileReport

T = TypeVar("T")

log = logging.getLogger(__name__)

# Longest wait to show a member how a job ended (Discord may be rate limiting or going away).
TELL_TIMEOUT = 10.0
# A time limit or a stop that comes while results are being posted waits this long for the post
# (and its books) to finish before calling it unposted.
POST_GRACE = 30.0
# The "images left" line is cosmetic: a busy database must not hold up (or drop) a paid result.
QUOTA_LINE_TIMEOUT = 2.0
# Keeping the posted images (for /show, Vary and DMs) is best effort: bounded, never fatal.
KEEP_RESULTS_TIMEOUT = 10.0
# Saving a task id or the posted record is retried on a busy database: waits between tries.
SAVE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)
SETTLE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 60.0, 60.0, 60.0, 60.0, 60.0)
# A call refused for the backend's in-flight limit (429, not run, not billed) is tried again this
# many times before the job ends `rejected`; never sooner than MIN_RETRY_WAIT apart.
MAX_LIMITED_TRIES = 10
MIN_RETRY_WAIT = 0.5


class Exit(enum.StrEnum):
    """Every way a job can leave the lifecycle (and the two ways a restart picks one up)."""

    DELIVERED = "delivered"  # at least one image posted
    NOTHING_DELIVERED = "nothing-delivered"  # the backend ran; every image withheld or lost
    NOT_POSTED = "not-posted"  # images came back; none could be posted
    REJECTED = "rejected"  # refused before it ran (bad option, 4xx, 5xx before sending)
    UNKNOWN = "unknown"  # may have run (timeout after sending, error after submit)
    TIMED_OUT = "timed-out"  # the scheduler's time limit stopped it
    INTERRUPTED = "interrupted"  # a clean stop cut it off at a synchronous backend
    LEFT_FOR_RESUME = "left-for-resume"  # a clean stop left its task for the next start
    NOT_STARTED = "not-started"  # cancelled while queued (a clean stop, or the member)
    CRASHED_AT_BACKEND = "crashed-at-backend"  # a crash left it at a synchronous backend
    SETTLED_AFTER_CRASH = "settled-after-crash"  # a crash came between posting and settling


@dataclass(frozen=True)
class ExitRule:
    """What one exit means for the job, the member, the backend's bill and the images."""

    state: str  # the job's state after this exit
    charged: str  # what the member's quota is charged
    billed: str  # the backend cost recorded
    sees: str  # what the member is shown
    images: str  # where result images go


EXITS: dict[Exit, ExitRule] = {
    Exit.DELIVERED: ExitRule(
        "delivered",
        "the images posted",
        "what the backend billed",
        "the result: images, embed, controls",
        "posted and kept in results/ for the retention period; any not posted are kept in "
        "undelivered/",
    ),
    Exit.NOTHING_DELIVERED: ExitRule(
        "failed",
        "nothing",
        "what the backend billed",
        "why (withheld by the safety filter, or links expired) and that it was free",
        "none came back (damaged ones are kept in undelivered/)",
    ),
    Exit.NOT_POSTED: ExitRule(
        "failed",
        "nothing",
        "what the backend billed",
        "generated but could not be posted; not charged",
        "kept in undelivered/",
    ),
    Exit.REJECTED: ExitRule(
        "failed",
        "nothing",
        "nothing",
        "the backend's reason; not charged",
        "none",
    ),
    Exit.UNKNOWN: ExitRule(
        "unknown",
        "nothing",
        "unknown",
        "it may have run; not charged (never resent on its own)",
        "none",
    ),
    Exit.TIMED_OUT: ExitRule(
        "unknown",
        "nothing",
        "unknown",
        "it took too long and was stopped; not charged",
        "none",
    ),
    Exit.INTERRUPTED: ExitRule(
        "unknown",
        "nothing",
        "unknown",
        "the bot is restarting and it was interrupted; not charged",
        "none",
    ),
    Exit.LEFT_FOR_RESUME: ExitRule(
        "running",
        "held until the next start finishes it",
        "pending",
        "it will be posted when the bot is back",
        "posted by the next start",
    ),
    Exit.NOT_STARTED: ExitRule(
        "cancelled",
        "nothing",
        "nothing",
        "it was not started; not charged",
        "none",
    ),
    Exit.CRASHED_AT_BACKEND: ExitRule(
        "unknown",
        "nothing",
        "unknown",
        "the bot restarted while it was at the backend; not charged; a Retry button",
        "none",
    ),
    Exit.SETTLED_AFTER_CRASH: ExitRule(
        "delivered",
        "the images posted",
        "what the backend billed",
        "the result, as it was posted",
        "posted",
    ),
}

# How a restart treats jobs it finds open (not exits: the job goes on).
RESTART_ROWS = (
    ("queued", "queued again and run; the member's message shows the new position"),
    ("running, task id saved (task proxy)", "resumed: polled, then posted as a reply"),
    ("running at a synchronous backend", f"closed as `{Exit.CRASHED_AT_BACKEND}`"),
    ("posted, not yet settled", f"settled as `{Exit.SETTLED_AFTER_CRASH}`"),
)


def exit_table() -> str:
    """EXITS as the Markdown table docs/architecture.md shows."""
    lines = [
        "| Exit | Job state | Member charged | Backend billed | Member sees | Images |",
        "|---|---|---|---|---|---|",
    ]
    for exit_, rule in EXITS.items():
        lines.append(
            f"| `{exit_}` | {rule.state} | {rule.charged} | {rule.billed} | {rule.sees} "
            f"| {rule.images} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Ending:
    """How a job ended without a result to show; each surface renders it once."""

    exit: Exit
    job_id: int
    error: BaseException | None = None  # the error behind it (its str() is the plain sentence)
    delivery: Delivery | None = None  # what came back, for NOTHING_DELIVERED


@dataclass(frozen=True)
class Posted:
    """What a presenter managed to post: message ids, their channel, images attached."""

    message_ids: tuple[int, ...]
    channel_id: int | None
    images: int
    # What the presenter still does once the result is in the books (e.g. delete its status
    # message): a Discord call after the post must not stand between the post and the books.
    then: Callable[[], Awaitable[None]] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Outcome:
    """What one job came to, for the presenter's result message."""

    job: Job
    request: RemixRequest
    delivery: Delivery
    quota_left: int | None  # None = unlimited
    changes: tuple[str, ...] = ()
    quota_known: bool = True  # False when the database could not say in time


class Presenter(Protocol):
    """Shows one job to its requester: progress, results, or how it ended."""

    async def progress(self, progress: Progress) -> None:
        """Show queue position / stage (called at most every few seconds)."""

    async def deliver(self, outcome: Outcome) -> Posted:
        """Post the result images; return what was posted (raise only if nothing was)."""

    async def end(self, ending: Ending) -> None:
        """Tell the requester the job ended without (all of) its images."""


@dataclass(frozen=True)
class JobTask:
    """What a job runs: the request and its prepared images, with who asked (for the quota line)."""

    request: RemixRequest
    image: EncodedImage | None  # None when resuming a task already at the backend
    refs: Sequence[EncodedImage] = ()
    role_ids: tuple[int, ...] = ()
    changes: tuple[str, ...] = ()  # what intake did to the input, for the result message
    mask: EncodedImage | None = None  # an edit's mask, at the prepared image's exact size


def _no_stage(stage: str) -> None:
    """The default stage reporter: nobody is watching."""


class BackendSlot(Protocol):
    """A place at the backend: the scheduler's admission in the bot, `PacedSlot` elsewhere."""

    async def acquire(self) -> None:
        """Wait until the call may be sent."""

    def answered(self) -> None:
        """The backend accepted the call: give the place back before downloading."""

    def limited(self, retry_after: float | None = None, limit: int | None = None) -> None:
        """The backend refused the call for its in-flight limit (429): give the place back."""


class PacedSlot:
    """The slot of a job with no scheduler (the terminal): after a 429 it waits, doubling."""

    def __init__(self) -> None:
        self._wait = 0.0
        self._tries = 0

    async def acquire(self) -> None:
        """Sleep what the last 429 asked for."""
        if self._wait:
            await asyncio.sleep(self._wait)
            self._wait = 0.0

    def answered(self) -> None:
        """Nothing to give back."""

    def limited(self, retry_after: float | None = None, limit: int | None = None) -> None:
        """Wait before the next try: the backend's Retry-After, or a doubling pause."""
        self._tries += 1
        self._wait = max(retry_after or 0.0, min(2.0**self._tries, 30.0), MIN_RETRY_WAIT)


@dataclass
class _Submission:
    """Whether the backend has accepted the work (from then on any failure is outcome-unknown)."""

    accepted: bool = False
    saved_refs: list[str] = field(default_factory=list)
    # True while a call is out to the backend (False while waiting for a place after a 429).
    at_backend: bool = True


class JobLifecycle:
    """Runs jobs from reservation to closed books; one per process, shared by every job."""

    def __init__(
        self,
        *,
        store: Store,
        backend: Backend,
        download_session: aiohttp.ClientSession,
        policy: DownloadPolicy,
        verify: Verify | None,
        work_dir: Path,
        undelivered_dir: Path,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self.store = store
        self.metrics = metrics  # every exit, image count and backend call is counted here
        self.backend = backend
        self.download_session = download_session
        self.policy = policy
        self.verify = verify
        self.work_dir = work_dir
        self.undelivered_dir = undelivered_dir
        # Set by a clean stop: a job cut off at the backend is left for the next start to
        # resume when its task id is saved, otherwise closed INTERRUPTED.
        self.stopping = False
        self._books = Background()  # posted results whose settle is retried

    # --- reserve ---------------------------------------------------------------------------

    async def reserve(self, new: NewJob) -> Job:
        """Create the job and reserve its images (QuotaRefused); a replay returns it `replayed`."""
        try:
            return await self.store.submit_job(new)
        except QuotaRefused:
            self.metrics.quota_refused()
            raise

    def reconciled(self, report: ReconcileReport) -> None:
        """Count the exits a restart's reconcile took for the jobs of a process that is gone."""
        for _ in report.closed_unknown:
            self.metrics.job_ended(Exit.CRASHED_AT_BACKEND)
        for _ in report.delivered:
            self.metrics.job_ended(Exit.SETTLED_AFTER_CRASH)

    # --- run -------------------------------------------------------------------------------

    async def run(
        self,
        job: Job,
        task: JobTask,
        presenter: Presenter,
        *,
        stage: Callable[[str], None] = _no_stage,
        slot: BackendSlot | None = None,
    ) -> Posted | None:
        """`_run` with every log line about this job marked with its id and guild."""
        with job_context(job.id, job.guild_id):
            return await self._run(job, task, presenter, stage=stage, slot=slot)

    async def _run(
        self,
        job: Job,
        task: JobTask,
        presenter: Presenter,
        *,
        stage: Callable[[str], None] = _no_stage,
        slot: BackendSlot | None = None,
    ) -> Posted | None:
        """Submit the job, collect its images, post them and settle; None if it did not post.

        `slot` is the job's place at the backend (the scheduler's admission): taken before each
        try, given back as soon as the backend answers; an in-flight 429 gives it back and the
        call is tried again when a place is free, without charging or losing the job.

        Cancelling it (a time limit, a clean stop) closes its books before the cancellation
        goes on.
        """
        try:
            job = await self._retrying(lambda: self.store.mark_running(job.id))
        except StoreBusy as exc:
            # Still locked after the retries: nothing was sent, so hand it back refunded now
            # (the close goes on in the background) rather than hold it open until a restart.
            await self._close(job, Exit.NOT_STARTED, "not started: the database was busy", 0)
            await tell(presenter, Ending(Exit.NOT_STARTED, job.id, error=exc))
            return None
        if job.state != "running":  # cancelled while queued
            return None
        if task.image is None:
            raise ValueError("a new job needs its prepared input image")
        submission = _Submission()
        stage("generating")
        dest = self.work_dir / f"job-{job.id}"

        async def submitted(ref: str) -> None:
            submission.accepted = True
            stage(f"submitted:{ref}")
            await self._save_ref(job.id, ref, submission)

        place = slot if slot is not None else PacedSlot()

        async def produce() -> Delivery:
            assert task.image is not None
            for tries in range(1, MAX_LIMITED_TRIES + 1):
                await place.acquire()
                submission.at_backend = True
                try:
                    result = await self._timed(
                        self.backend.remix(
                            task.request,
                            task.image,
                            list(task.refs),
                            mask=task.mask,
                            on_submitted=submitted,
                        )
                    )
                except RemixRateLimited as exc:
                    submission.at_backend = False  # refused unrun: waiting for a place again
                    if (
                        not exc.inflight
                        or exc.may_have_run
                        or submission.accepted
                        or tries == MAX_LIMITED_TRIES
                    ):
                        raise
                    log.info("job %s: the backend is at its limit; trying again", job.id)
                    place.limited(exc.retry_after, exc.limit)
                    continue
                place.answered()
                return await collect(
                    result,
                    self.download_session,
                    self.policy,
                    dest,
                    stem=f"remix-{job.id}",
                    verify=self.verify,
                )
            raise AssertionError("unreachable")

        return await self._finish(job, task, presenter, produce, submission, dest, stage)

    async def resume(
        self,
        job: Job,
        task: JobTask,
        presenter: Presenter,
        *,
        stage: Callable[[str], None] = _no_stage,
    ) -> Posted | None:
        """Finish a job a previous process left at the backend (its task id is saved)."""
        with job_context(job.id, job.guild_id):
            return await self._resume(job, task, presenter, stage)

    async def _resume(
        self, job: Job, task: JobTask, presenter: Presenter, stage: Callable[[str], None]
    ) -> Posted | None:
        dest = self.work_dir / f"job-{job.id}"
        submission = _Submission(accepted=True)
        ref = job.backend_ref
        if not ref or not getattr(self.backend, "resumable", False):
            await self._close(job, Exit.UNKNOWN, "no task to resume after a restart", None)
            return None

        async def produce() -> Delivery:
            return await resume_remix(
                self.backend,
                self.download_session,
                self.policy,
                ref,
                dest,
                stem=f"remix-{job.id}",
                verify=self.verify,
            )

        log.info("job %s: resuming its task after a restart", job.id)
        stage("generating")
        return await self._finish(job, task, presenter, produce, submission, dest, stage)

    async def not_started(
        self, job_id: int, presenter: Presenter | None, error: BaseException | None = None
    ) -> None:
        """Close a job the scheduler will never run (cancelled while queued, handed back at a
        stop, or found unrunnable after a restart): refunded, and the member told."""
        reason = str(error) if error is not None else "cancelled before it started"
        job = await self.store.find_job(job_id)
        if job is None or job.final:
            return
        with job_context(job.id, job.guild_id):
            await self._close(job, Exit.NOT_STARTED, reason, 0)
            if presenter is not None:
                await tell(presenter, Ending(Exit.NOT_STARTED, job_id, error=error))

    async def crashed(self, job_id: int, presenter: Presenter, exc: BaseException) -> None:
        """An unexpected error escaped a run: close the job outcome-unknown if it is still open
        (never "not charged, try again": it may have reached the backend)."""
        job = await self.store.find_job(job_id)
        if job is None or job.final:
            return
        await self._close(job, Exit.UNKNOWN, f"internal error: {type(exc).__name__}", None)
        await tell(presenter, Ending(Exit.UNKNOWN, job_id, error=exc))

    # --- the exits -------------------------------------------------------------------------

    async def _finish(
        self,
        job: Job,
        task: JobTask,
        presenter: Presenter,
        produce: Callable[[], object],
        submission: _Submission,
        dest: Path,
        stage: Callable[[str], None],
    ) -> Posted | None:
        try:
            delivery: Delivery = await produce()  # type: ignore[misc]
        except asyncio.CancelledError:
            # A time limit or a clean stop: the backend may have run it. Shielded, so the
            # cancellation cannot also cancel the bookkeeping; then it goes on.
            await asyncio.shield(self._cut_off(job, presenter, dest, submission))
            raise
        except Exception as exc:
            await asyncio.shield(self._failed(job, presenter, exc, submission, dest))
            return None
        # From here the images may be on their way to Discord: a time limit or a stop must not
        # undo a result a member may already see. The post and its books run on their own and
        # are given POST_GRACE to finish; only a post still stuck after that is called unposted.
        post = asyncio.ensure_future(self._post(job, task, presenter, delivery, dest, stage))
        try:
            return await asyncio.shield(post)
        except asyncio.CancelledError:
            done, _ = await asyncio.wait({post}, timeout=POST_GRACE)
            if not done:
                post.cancel()
                await asyncio.wait({post}, timeout=TELL_TIMEOUT)
                await asyncio.shield(self._not_posted(job, presenter, delivery, dest, "cut off"))
            raise

    async def _failed(
        self,
        job: Job,
        presenter: Presenter,
        exc: Exception,
        submission: _Submission,
        dest: Path,
    ) -> None:
        """The backend call or the download failed: close by what may have happened."""
        may_have_run = submission.accepted or (isinstance(exc, RemixError) and exc.may_have_run)
        if not isinstance(exc, RemixbotError):
            log.error("job %s failed", job.id, exc_info=exc)
            may_have_run = True  # we cannot tell where it stopped: never invite a second payment
        exit_ = Exit.UNKNOWN if may_have_run else Exit.REJECTED
        text = (
            str(exc) if isinstance(exc, RemixbotError) else f"internal error: {type(exc).__name__}"
        )
        await _remove(dest)
        await self._close(job, exit_, text, None)
        await tell(presenter, Ending(exit_, job.id, error=exc))

    async def _cut_off(
        self, job: Job, presenter: Presenter, dest: Path, submission: _Submission
    ) -> None:
        """Close a job stopped while at the backend, or leave it for the next start to resume."""
        await _remove(dest)
        current = await self.store.find_job(job.id)
        if current is None or current.final:
            return
        if not submission.at_backend and not submission.accepted:
            # Stopped while waiting for a place after the backend refused it (429): it never ran.
            await self._close(job, Exit.NOT_STARTED, "stopped before the backend took it", 0)
            await tell(presenter, Ending(Exit.NOT_STARTED, job.id))
            return
        resumable = bool(current.backend_ref) and getattr(self.backend, "resumable", False)
        if self.stopping and resumable and current.state == "running":
            log.info("job %s: left running; the next start resumes its task", job.id)
            self.metrics.job_ended(Exit.LEFT_FOR_RESUME)
            await tell(presenter, Ending(Exit.LEFT_FOR_RESUME, job.id))
            return
        exit_ = Exit.INTERRUPTED if self.stopping else Exit.TIMED_OUT
        await self._close(job, exit_, f"{exit_}: stopped while at the backend", None)
        await tell(presenter, Ending(exit_, job.id))

    async def _post(
        self,
        job: Job,
        task: JobTask,
        presenter: Presenter,
        delivery: Delivery,
        dest: Path,
        stage: Callable[[str], None],
    ) -> Posted | None:
        self.metrics.images(generated=delivery.billed, withheld=delivery.withheld)
        if delivery.damaged:
            await asyncio.to_thread(self._keep, job.id, delivery.damaged)
        if not delivery.images:
            reason = _nothing_reason(delivery)
            await _remove(dest)
            await self._close(job, Exit.NOTHING_DELIVERED, reason, delivery.billed)
            await tell(presenter, Ending(Exit.NOTHING_DELIVERED, job.id, delivery=delivery))
            return None
        stage("uploading")
        left, known = await self._quota_left(job, task.role_ids, len(delivery.images))
        outcome = Outcome(job, task.request, delivery, left, task.changes, known)
        try:
            posted = await presenter.deliver(outcome)
        except Exception:
            log.exception("job %s: the results could not be posted", job.id)
            posted = Posted((), None, 0)
        if posted.images == 0:
            await self._not_posted(job, presenter, delivery, dest, "nothing could be posted")
            return posted
        record = PostedRecord(
            job_id=job.id,
            message_ids=tuple(posted.message_ids),
            channel_id=posted.channel_id,
            images=posted.images,
            withheld=delivery.withheld,
            billed=delivery.billed,
        )
        # Journaled at once: from here a 🔁 on the result finds the job. The work folder is
        # tidied before the books close, so a job seen final leaves nothing behind: the posted
        # images are read for keeping first, the unposted ones moved aside.
        await self._journal(record)
        kept = await self._read_results(job.id, [i.path for i in delivery.images[: posted.images]])
        unposted = [i.path for i in delivery.images[posted.images :]]
        if unposted:  # a partial post: the rest were paid for; keep them for the admin
            await asyncio.to_thread(self._keep, job.id, unposted)
        await _remove(dest)
        await self._settle(record)
        if posted.then is not None:  # in the background: a slow Discord holds up nothing
            self._track(_bounded(posted.then(), job.id, "tidy its status message"), job.id)
        await self._keep_results(job.id, kept)
        self.metrics.images(posted=posted.images)
        self.metrics.job_ended(Exit.DELIVERED)
        return posted

    async def _not_posted(
        self, job: Job, presenter: Presenter, delivery: Delivery, dest: Path, why: str
    ) -> None:
        """Images came back but none were posted: refund, keep the files for the admin, tell."""
        current = await self.store.find_job(job.id)
        if current is not None and not current.final:
            await asyncio.to_thread(self._keep, job.id, [i.path for i in delivery.images])
            await _remove(dest)  # before the books close: what is final is tidy
            await self._close(job, Exit.NOT_POSTED, f"posting failed: {why}", delivery.billed)
            await tell(presenter, Ending(Exit.NOT_POSTED, job.id, delivery=delivery))
        await _remove(dest)

    # --- the books -------------------------------------------------------------------------

    async def _close(self, job: Job, exit_: Exit, error: str, billed: int | None) -> Job:
        """Close the job as the exit's rule says (every exit that refunds comes through here)."""
        rule = EXITS[exit_]
        if rule.billed == "nothing":
            billed = 0
        elif rule.billed == "unknown":
            billed = None
        try:
            closed = await self._retrying(
                lambda: self.store.fail(job.id, error, rule.state, billed)
            )
        except Exception as exc:
            # Still busy: keep trying in the background (the member is told now, the books
            # follow); if the process dies first, the next start refunds the job.
            log.warning("job %s: could not close the books yet (%s); retrying", job.id, exc)
            self._later(
                lambda: self.store.fail(job.id, error, rule.state, billed),
                job.id,
                "the next start refunds it",
            )
            self.metrics.job_ended(exit_)
            return job
        self.metrics.job_ended(exit_)
        return closed

    def _later(self, write: Callable[[], Awaitable[object]], job_id: int, gave_up: str) -> None:
        """Keep trying a write of the books while the database is busy, in the background
        (tracked, so close() can wait for it); `gave_up` says what the next start does."""

        async def retry() -> None:
            for delay in SETTLE_RETRY_DELAYS:
                await asyncio.sleep(delay)
                try:
                    await write()
                    log.info("job %s: the books are written", job_id)
                    return
                except Exception as exc:
                    log.info("job %s: the books are still busy (%s)", job_id, exc)
            log.warning("job %s: gave up writing its books; %s", job_id, gave_up)

        self._track(retry(), job_id)

    def _track(self, work: Awaitable[None], job_id: int) -> None:
        """Run `work` in the background, tracked so that close() can wait for it."""
        self._books.spawn(work, f"books-{job_id}")

    async def _journal(self, record: PostedRecord) -> None:
        """Write the posted record to the journal (no database), so a process that dies before
        the books are written leaves it for the next start to settle."""
        try:
            await self.store.journal_posted(record)
        except Exception:  # the database may still take the record; do not stop here
            log.warning("job %s: could not journal the posted result", record.job_id, exc_info=True)

    async def _settle(self, record: PostedRecord) -> None:
        """Record the posted messages and settle; on a busy database keep trying in the background
        (the posted result is never undone)."""
        try:
            await self.store.settle_posted(record)
            return
        except Exception as exc:
            log.warning(
                "job %s: posted, but the books could not be written yet (%s); retrying",
                record.job_id,
                exc,
            )
        self._later(
            lambda: self.store.settle_posted(record),
            record.job_id,
            "the next start settles it from its journal",
        )

    async def _save_ref(self, job_id: int, ref: str, submission: _Submission) -> None:
        """Save the backend's task id (for resuming); a busy database is retried, never fatal."""
        try:
            await self._retrying(lambda: self.store.set_backend_ref(job_id, ref))
            submission.saved_refs.append(ref)
        except Exception as exc:
            # The work is paid for and running: carry on, only resuming after a crash is lost.
            log.warning("job %s: the task id could not be saved (%s)", job_id, exc)

    async def _timed(self, call: Awaitable[T]) -> T:
        """Await one backend call, counting how long it took and how it failed."""
        started = time.monotonic()
        try:
            result = await call
        except Exception as exc:
            self.metrics.backend_call(time.monotonic() - started, type(exc).__name__)
            raise
        self.metrics.backend_call(time.monotonic() - started)
        return result

    @staticmethod
    async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, tried again after short waits while the database is busy."""
        for delay in SAVE_RETRY_DELAYS:
            try:
                return await call()
            except StoreBusy:
                await asyncio.sleep(delay)
        return await call()

    async def _quota_left(
        self, job: Job, role_ids: Sequence[int], delivered: int
    ) -> tuple[int | None, bool]:
        """(images left after this job settles, whether the database answered in time)."""
        try:
            async with asyncio.timeout(QUOTA_LINE_TIMEOUT):
                status = await self.store.quota_status(job.user_id, job.guild_id, role_ids)
        except Exception as exc:
            log.info("job %s: quota line left out (%s)", job.id, type(exc).__name__)
            return None, False
        if status.remaining is None:
            return None, True
        # What settle will refund comes back to the member: count it as left already.
        return status.remaining + max(0, job.images_reserved - delivered), True

    @staticmethod
    async def _read_results(job_id: int, paths: Sequence[Path]) -> list[bytes]:
        """The posted images' bytes, for keeping (empty when they cannot be read)."""
        try:
            return await asyncio.to_thread(lambda: [p.read_bytes() for p in paths])
        except OSError as exc:
            log.warning("job %s: the posted images were not kept (%s)", job_id, exc)
            return []

    async def _keep_results(self, job_id: int, images: Sequence[bytes]) -> None:
        """Store the posted images with the job for the retention period (/show, Vary, DMs);
        a failure only costs those controls their images, never the posted result."""
        if not images:
            return
        try:
            async with asyncio.timeout(KEEP_RESULTS_TIMEOUT):
                await self.store.keep_results(job_id, images)
        except Exception as exc:
            log.warning("job %s: the posted images were not kept (%s)", job_id, exc)

    def _keep(self, job_id: int, paths: Sequence[Path]) -> None:
        """Move paid-for files that were not posted to undelivered/job-<id>/ (blocking)."""
        keep = self.undelivered_dir / f"job-{job_id}"
        moved = 0
        for path in paths:
            with contextlib.suppress(OSError):
                keep.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), keep / path.name)
                moved += 1
        if moved:
            log.warning("job %s: %d unposted image(s) kept in %s", job_id, moved, keep)

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (a bound, not a deadline)
        """Give pending settles one last chance; the journal covers what is still pending."""
        await self._books.finish(timeout)


async def _bounded(call: Awaitable[None], job_id: int, what: str) -> None:
    """A presenter's call after the post: bounded, and never raising."""
    try:
        await asyncio.wait_for(call, TELL_TIMEOUT)
    except Exception:
        log.info("job %s: could not %s", job_id, what, exc_info=True)


async def tell(presenter: Presenter, ending: Ending) -> None:
    """Show the member how the job ended; bounded, and never raising."""
    try:
        await asyncio.wait_for(presenter.end(ending), TELL_TIMEOUT)
    except Exception:
        log.warning("could not tell the member how job %s ended", ending.job_id, exc_info=True)


def _nothing_reason(delivery: Delivery) -> str:
    """The recorded reason a job that ran delivered no image."""
    if delivery.withheld and not delivery.failed_downloads:
        return f"all {delivery.withheld} image(s) withheld by the backend's safety filter"
    if delivery.errors:
        return f"no image delivered: {delivery.errors[0]}"
    return "no image delivered"


async def _remove(path: Path) -> None:
    await asyncio.to_thread(shutil.rmtree, path, True)

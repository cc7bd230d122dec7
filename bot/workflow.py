"""One job's life on the bot: accept (prepare, store, reserve, queue), run, deliver, settle.

Discord-free: the cog side hands in a `Presenter` that shows progress and posts results.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from bot.errors import InvalidRequest, RemixbotError, RemixError, RemixRateLimited
from bot.intake import ImagePool, IntakeLimits, PreparedImage
from bot.jobs import Admission, JobTicket, Progress, Scheduler
from bot.media import EncodedImage
from bot.remix.backends import BACKEND_CLASSES
from bot.remix.backends.base import Backend
from bot.remix.download import DownloadPolicy
from bot.remix.pipeline import Delivery, resume_remix, run_remix
from bot.remix.request import RemixRequest
from bot.settings import Settings
from bot.store import Job, NewJob, QuotaExceeded, Store, UserBlocked

log = logging.getLogger(__name__)

# Longest wait to show a member a failure (Discord may be rate limiting or going away).
TELL_TIMEOUT = 10.0


@dataclass(frozen=True)
class Requester:
    """Who asked, where, and what to reply to; ids are Discord snowflakes (guild None = DM)."""

    user_id: int
    guild_id: int | None
    channel_id: int | None
    role_ids: tuple[int, ...] = ()
    interaction_id: int | None = None
    request_message_id: int | None = None


@dataclass(frozen=True)
class Posted:
    """What a presenter managed to post: message ids, their channel, images attached."""

    message_ids: tuple[int, ...]
    channel_id: int | None
    images: int


@dataclass(frozen=True)
class Outcome:
    """What one job came to, for the presenter's result message."""

    job: Job
    request: RemixRequest
    delivery: Delivery
    quota_left: int | None  # None = unlimited
    prepared_changes: tuple[str, ...] = ()


class Presenter(Protocol):
    """Shows one job to its requester: progress, results, or one clear failure sentence."""

    async def progress(self, progress: Progress) -> None:
        """Show queue position / stage (called at most every few seconds)."""

    async def deliver(self, outcome: Outcome) -> Posted:
        """Post the result images; return what was posted (raise only if nothing was)."""

    async def fail(self, message: str) -> None:
        """Tell the requester the job ended without images, in one or two sentences."""


def intake_limits(settings: Settings) -> IntakeLimits:
    """Intake limits whose auto-picked ratios are ones the configured backend accepts."""
    ratios = BACKEND_CLASSES[settings.backend].ratios_for(settings)
    return dataclasses.replace(IntakeLimits.from_settings(settings), ratios=ratios)


def with_chosen_ratio(
    backend: Backend, request: RemixRequest, prepared: PreparedImage, refs: int
) -> RemixRequest:
    """Send the ratio intake cropped to; drop an auto-picked one this backend cannot take."""
    if request.resolution or not prepared.aspect_ratio or request.aspect_ratio:
        return request
    chosen = dataclasses.replace(request, aspect_ratio=prepared.aspect_ratio)
    try:
        backend.check(chosen, refs)
    except InvalidRequest:
        return request
    return chosen


def failure_message(exc: BaseException) -> str:
    """The sentence a member sees when a job fails after it was accepted."""
    if isinstance(exc, RemixError) and exc.may_have_run:
        return f"{exc} You were not charged for it."
    if isinstance(exc, RemixbotError):
        return f"{exc} You were not charged."
    return "Something went wrong on our side while remixing; you were not charged."


class RemixService:
    """Accepts remix and reroll jobs, runs them through the scheduler, and settles the books."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        pool: ImagePool,
        backend: Backend,
        download_session: aiohttp.ClientSession,
        scheduler: Scheduler,
        work_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self.backend = backend
        self.download_session = download_session
        self.scheduler = scheduler
        self.limits = intake_limits(settings)
        self.policy = DownloadPolicy.from_settings(settings)
        self.work_dir = work_dir or settings.data_dir / "work"
        self._watchers: set[asyncio.Task[None]] = set()
        # Set by shutdown(): interrupted jobs are told "restarting", resumable ones are left open.
        self.stopping = False

    # --- requests ------------------------------------------------------------------------

    def build_request(self, **options: Any) -> RemixRequest:
        """Validate options into a RemixRequest this server and backend accept (InvalidRequest)."""
        request = RemixRequest(**{k: v for k, v in options.items() if v is not None})
        self.check_request(request)
        return request

    def check_request(self, request: RemixRequest) -> None:
        """The server's per-job cap and the backend's own limits (InvalidRequest)."""
        cap = self.settings.max_images_per_job
        if request.num_images > cap:
            raise InvalidRequest(
                f"num_images must be from 1 to {cap} on this server, not {request.num_images}."
            )
        self.backend.check(request, request.style_ref_count)

    # --- accepting -----------------------------------------------------------------------

    async def precheck(self, who: Requester, images: int) -> None:
        """The refusals known before any download (queue room, block, quota), so a member can
        be answered at once and privately. remix() checks them all again when it reserves."""
        self.scheduler.refuse_if_full(who.user_id)
        status = await self.store.quota_status(who.user_id, who.guild_id, who.role_ids)
        if status.blocked_reason is not None:
            raise UserBlocked(status.blocked_reason)
        if status.remaining is not None and images > status.remaining:
            raise QuotaExceeded.from_status(status, images)

    async def remix(
        self,
        who: Requester,
        request: RemixRequest,
        image: bytes,
        refs: Sequence[bytes],
        presenter: Presenter,
        *,
        kind: str = "remix",
        parent_job_id: int | None = None,
    ) -> Admission | None:
        """Prepare, store, reserve and queue one job; None if this interaction was seen before.

        Raises (nothing charged): InvalidImage, InvalidRequest, QuotaRefused, QueueFull.
        """
        hold = self.scheduler.check_admission(who.user_id)
        try:
            prepared = await self.pool.prepare(
                image, aspect_ratio=request.aspect_ratio, limits=self.limits
            )
            ref_images: list[PreparedImage] = (
                await self.pool.prepare_style_refs(list(refs), self.limits) if refs else []
            )
            request = with_chosen_ratio(self.backend, request, prepared, len(ref_images))
            input_key = await self.store.inputs.put(prepared.image.data)
            ref_keys = [await self.store.inputs.put(r.image.data) for r in ref_images]
            job = await self.store.submit_job(
                NewJob(
                    interaction_id=who.interaction_id,
                    guild_id=who.guild_id,
                    channel_id=who.channel_id,
                    user_id=who.user_id,
                    kind=kind,
                    parent_job_id=parent_job_id,
                    request=request.to_dict(),
                    input_key=input_key,
                    style_ref_keys=ref_keys,
                    backend=self.backend.name,
                    images=request.num_images,
                    role_ids=who.role_ids,
                    request_message_id=who.request_message_id,
                )
            )
        except BaseException:
            hold.release()
            raise
        if job.replayed:  # a replayed interaction: the first handler owns the job
            hold.release()
            return None
        run = _Run(
            self,
            job,
            request,
            presenter,
            prepared=prepared,
            refs=[r.image for r in ref_images],
            role_ids=who.role_ids,
        )
        ticket = JobTicket(job_id=job.id, user_id=who.user_id, images=request.num_images, run=run)
        try:
            admission = self.scheduler.submit(ticket, hold=hold)
        except RemixbotError:
            await self.store.fail(job.id, "refused by the queue", "cancelled", billed=0)
            raise
        self._watch(admission, presenter)
        return admission

    async def reroll(self, who: Requester, job_id: int, presenter: Presenter) -> Admission | None:
        """Run a stored job again with a new seed, charged to ``who``."""
        parent = await self.store.find_job(job_id)
        data = (
            await self.store.inputs.get(parent.input_key) if parent and parent.input_key else None
        )
        if parent is None or data is None:
            raise InvalidRequest(
                "That remix's input image is no longer stored; start a new one with /remix."
            )
        refs = []
        for key in parent.style_ref_keys:
            ref = await self.store.inputs.get(key)
            if ref is None:
                raise InvalidRequest(
                    "That remix's style reference images are no longer stored; "
                    "start a new one with /remix."
                )
            refs.append(ref)
        request = RemixRequest.from_dict(parent.request).with_seed(None)
        try:
            # The server's cap or backend may have changed since: check before reserving.
            self.check_request(request)
        except InvalidRequest as exc:
            raise InvalidRequest(
                f"That remix can't be rerolled on this server any more ({exc}); "
                "start a new one with /remix."
            ) from None
        return await self.remix(
            who, request, data, refs, presenter, kind="reroll", parent_job_id=parent.id
        )

    def _watch(self, admission: Admission, presenter: Presenter) -> None:
        """Forward progress to the presenter until the job leaves the scheduler."""

        async def watch() -> None:
            async for progress in admission.updates():
                if progress.state.final:
                    return
                try:
                    await presenter.progress(progress)
                except Exception:  # progress is cosmetic: never let it hurt the job
                    log.warning(
                        "progress update failed for job %s", admission.job_id, exc_info=True
                    )

        task = asyncio.get_running_loop().create_task(watch(), name=f"progress-{admission.job_id}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def resume(
        self, job: Job, presenter: Presenter, role_ids: Sequence[int] = ()
    ) -> Posted | None:
        """Finish a job left running at the backend by a previous process (task proxy only).

        `role_ids`: the member's roles now, so the "images left" line counts their tier.
        """
        if not job.backend_ref:
            await self.store.fail(job.id, "no task id to resume", "unknown")
            return None
        request = RemixRequest.from_dict(job.request)
        task_id = job.backend_ref

        def produce(dest: Path) -> Awaitable[Delivery]:
            return resume_remix(
                self.backend,
                self.download_session,
                self.policy,
                task_id,
                dest,
                stem=f"remix-{job.id}",
                verify=self.pool.check_result,
            )

        log.info("job %s: resuming task after a restart", job.id)
        run = _Run(self, job, request, presenter, role_ids=role_ids)
        return await run.finish(job, produce)

    async def shutdown(self, grace: float) -> None:
        """Stop taking work while Discord is still connected: queued jobs are refunded and their
        members told; running jobs get ``grace`` seconds to finish and post."""
        self.stopping = True
        result = await self.scheduler.drain(grace)
        for ticket in result.returned:
            await self.store.fail(
                int(ticket.job_id), "the bot shut down before it ran", "cancelled", billed=0
            )
            if isinstance(ticket.run, _Run):
                await ticket.run.tell(
                    "The bot is restarting, so this remix was not started; you were not "
                    "charged. Try again in a minute."
                )
        # Interrupted runs closed their own books (or were left open for resuming) in finish().
        await self.close()

    async def close(self) -> None:
        """Stop progress watchers (the scheduler is closed by its owner)."""
        for task in list(self._watchers):
            task.cancel()
        for task in list(self._watchers):
            with contextlib.suppress(BaseException):
                await task


class _Run:
    """One job's run: produce a Delivery (fresh, or resumed after a restart), post it, settle."""

    def __init__(
        self,
        service: RemixService,
        job: Job,
        request: RemixRequest,
        presenter: Presenter,
        *,
        prepared: PreparedImage | None = None,
        refs: Sequence[EncodedImage] = (),
        role_ids: Sequence[int] = (),
    ) -> None:
        self.service = service
        self.job = job
        self.request = request
        self.presenter = presenter
        self.prepared = prepared
        self.refs = list(refs)
        self.role_ids = tuple(role_ids)

    async def __call__(self, admission: Admission) -> Posted | None:
        """The scheduler's callable: mark running, call the backend, then finish."""
        s = self.service
        job = await s.store.mark_running(self.job.id)
        if job.state != "running":  # cancelled while queued
            return None
        assert self.prepared is not None
        image = self.prepared.image
        admission.set_stage("generating")

        async def saved(ref: str) -> None:
            await s.store.set_backend_ref(job.id, ref)

        def produce(dest: Path) -> Awaitable[Delivery]:
            return run_remix(
                s.backend,
                s.download_session,
                s.policy,
                self.request,
                image,
                self.refs,
                dest,
                on_submitted=saved,
                stem=f"remix-{job.id}",
                verify=s.pool.check_result,
            )

        return await self.finish(job, produce, admission)

    async def finish(
        self,
        job: Job,
        produce: Callable[[Path], Awaitable[Delivery]],
        admission: Admission | None = None,
    ) -> Posted | None:
        """Get the delivery, close the books on every failure, and post what came back."""
        s = self.service
        dest = s.work_dir / f"job-{job.id}"
        try:
            delivery = await produce(dest)
        except RemixError as exc:
            if isinstance(exc, RemixRateLimited) and exc.retry_after:
                s.scheduler.pause(exc.retry_after)
            state = "unknown" if exc.may_have_run else "failed"
            await s.store.fail(job.id, str(exc), state, billed=None if exc.may_have_run else 0)
            await self.tell(failure_message(exc))
            await _remove(dest)
            return None
        except asyncio.CancelledError:
            # The scheduler's time limit or shutdown: the backend may have run it. Shielded, so
            # the cancellation cannot also cancel the bookkeeping; then pass it on.
            await asyncio.shield(self._interrupted(job, dest))
            raise
        except RemixbotError as exc:  # refused before anything was sent (e.g. InvalidRequest)
            await s.store.fail(job.id, str(exc), "failed", billed=0)
            await self.tell(failure_message(exc))
            await _remove(dest)
            return None
        except Exception as exc:
            log.exception("job %s failed", job.id)
            await s.store.fail(job.id, f"internal error: {type(exc).__name__}", "unknown")
            await self.tell(failure_message(exc))
            await _remove(dest)
            return None
        try:
            return await self._deliver(admission, job, delivery, dest)
        except BaseException as exc:
            # The images exist and were billed; whatever stopped the posting, close the books.
            await asyncio.shield(self._not_posted(job, delivery, dest, exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.exception("job %s: posting the results failed", job.id)
            return None

    async def _interrupted(self, job: Job, dest: Path) -> None:
        """Close a job stopped while at the backend, or leave it for the next start to resume."""
        s = self.service
        await _remove(dest)
        current = await s.store.find_job(job.id)
        if current is None or current.final:
            return
        resumable = bool(current.backend_ref) and hasattr(s.backend, "resume")
        if s.stopping and resumable and current.state == "running":
            log.info("job %s: left running; the next start resumes its task", job.id)
            await self.tell("The bot is restarting; this remix will be posted when it is back.")
            return
        await s.store.fail(job.id, "interrupted while generating", "unknown", billed=None)
        if s.stopping:
            await self.tell(
                "The bot is restarting and this remix was interrupted; you were not charged."
            )
        else:
            await self.tell("This remix took too long and was stopped; you were not charged.")

    async def _not_posted(
        self, job: Job, delivery: Delivery, dest: Path, exc: BaseException
    ) -> None:
        """After an error while posting: refund, keep the paid files for the admin, tell."""
        s = self.service
        current = await s.store.find_job(job.id)
        if current is not None and not current.final:
            await s.store.fail(
                job.id, f"posting failed: {type(exc).__name__}", "failed", delivery.billed
            )
            await asyncio.to_thread(_keep_undelivered, dest, s.settings.data_dir, job.id)
            await self.tell(
                "The images were generated but could not be posted; you were not charged."
            )
        await _remove(dest)

    async def _deliver(
        self, admission: Admission | None, job: Job, delivery: Delivery, dest: Path
    ) -> Posted:
        s = self.service
        if not delivery.images:
            await s.store.settle(job.id, 0, delivery.withheld, delivery.billed)
            await self.tell(_nothing_message(delivery))
            await _remove(dest)
            return Posted((), None, 0)
        if admission is not None:
            admission.set_stage("uploading")
        status = await s.store.quota_status(job.user_id, job.guild_id, self.role_ids)
        left = None if status.remaining is None else status.remaining
        # What settle will refund comes back to the user: count it as left already.
        if left is not None:
            left += max(0, job.images_reserved - len(delivery.images))
        changes = self.prepared.changes if self.prepared else ()
        outcome = Outcome(job, self.request, delivery, left, changes)
        try:
            posted = await self.presenter.deliver(outcome)
        except Exception:
            log.exception("job %s: results could not be posted", job.id)
            posted = Posted((), None, 0)
        if posted.images == 0:
            # Paid images we could not post: not charged, kept for the admin, job failed.
            await s.store.fail(job.id, "results could not be posted", "failed", delivery.billed)
            await asyncio.to_thread(_keep_undelivered, dest, s.settings.data_dir, job.id)
            await self.tell(
                "The images were generated but could not be posted here; you were not charged. "
                "If this keeps happening, ask an admin to check my permissions in this channel."
            )
            await _remove(dest)
            return posted
        if posted.message_ids:
            await s.store.record_messages(job.id, posted.message_ids, posted.channel_id)
        await s.store.settle(job.id, posted.images, delivery.withheld, delivery.billed)
        await _remove(dest)
        return posted

    async def tell(self, message: str) -> None:
        """Show the member a failure sentence; bounded, and never raising."""
        try:
            await asyncio.wait_for(self.presenter.fail(message), TELL_TIMEOUT)
        except Exception:
            log.warning("could not tell the user about job %s", self.job.id, exc_info=True)


def _nothing_message(delivery: Delivery) -> str:
    """Why a job that ran produced no image, and that it cost the user nothing."""
    total = delivery.withheld + delivery.failed_downloads
    if delivery.withheld and not delivery.failed_downloads:
        return (
            f"All {total} image{'s' if total != 1 else ''} were withheld by the backend's "
            "safety filter; you were not charged. Try a different prompt or image."
        )
    reason = delivery.errors[0] if delivery.errors else "The images could not be downloaded."
    return f"{reason} You were not charged."


def _keep_undelivered(dest: Path, data_dir: Path, job_id: int) -> None:
    keep = data_dir / "undelivered" / f"job-{job_id}"
    with contextlib.suppress(OSError):
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(dest), keep)
        log.warning("job %s: undelivered images kept in %s", job_id, keep)


async def _remove(path: Path) -> None:
    await asyncio.to_thread(shutil.rmtree, path, True)

"""The bot's job service: accept remixes, rerolls and retries into the scheduler, run them through
the one `JobLifecycle`, and pick up what a previous process left open.

Discord-free: the cog side hands in a `Presenter` per job (and a factory for jobs it did not
start, after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.errors import InvalidRequest, RemixbotError
from bot.intake import ImagePool, IntakeLimits, PreparedImage
from bot.intake.mask import edit_mask_off_loop
from bot.jobs import Admission, JobTicket, Scheduler, SchedulerClosed
from bot.jobs.errors import JobRunning
from bot.lifecycle import Ending, Exit, JobLifecycle, JobTask, Posted, Presenter, tell
from bot.media import EncodedImage
from bot.moderation import Moderation, ServerPaused
from bot.remix.backends import BACKEND_CLASSES
from bot.remix.backends.base import Backend
from bot.remix.download import DownloadPolicy
from bot.remix.request import RemixRequest
from bot.settings import Settings
from bot.store import Job, NewJob, QuotaExceeded, Store, UserBlocked
from bot.store.models import ReconcileReport

log = logging.getLogger(__name__)

# A second reroll (🔁 or button) by the same member of the same result within this many seconds
# is ignored: a double tap, a double click or a redelivered event must not buy two.
REPEAT_WINDOW = 10.0
# How often the bot looks for jobs of processes that died (their reservations come back).
ORPHAN_CHECK_SECONDS = 60.0
# Vary's two strengths: the image weight of the new job (high follows the chosen image closely).
VARY_WEIGHTS = {"subtle": 85, "strong": 35}
# Uploads downloaded and prepared at once; the rest of a burst waits holding no image bytes.
INTAKE_AT_ONCE = 4
# Jobs whose prepared images stay in memory for their run, when it starts at once (no second read
# from disk, no second pass through the pool). Only these few: in a burst the rest wait on disk.
FRESH_KEPT = INTAKE_AT_ONCE

# Presenter for a job this process did not accept (picked up after a restart).
PresenterFor = Callable[[Job], Presenter | None]
# The member's role ids now, for a picked-up job's "images left" line (roles are not stored).
RolesFor = Callable[[Job], Awaitable[tuple[int, ...]]]


async def _no_roles(job: Job) -> tuple[int, ...]:
    """Without a way to ask: the default tier only."""
    return ()


class InputGone(InvalidRequest):
    """A stored job's input image (or a style reference) is no longer kept."""

    def __init__(self, what: str = "input image") -> None:
        self.what = what
        super().__init__(f"That remix's {what} is no longer stored.")


class NotRerunnable(InvalidRequest):
    """A stored job's options are no longer accepted here (the cap or the backend changed)."""

    def __init__(self, reason: InvalidRequest, kind: str = "reroll") -> None:
        self.reason = reason
        self.kind = kind  # "reroll" or "retry"
        verb = "rerolled" if kind == "reroll" else "run again"
        super().__init__(f"That remix can't be {verb} on this server any more ({reason}).")


class NotYourJob(InvalidRequest):
    """Only the member who asked for a job may retry it."""

    def __init__(self) -> None:
        super().__init__(
            "Only the member who asked for that remix can retry it; "
            "press Reroll on a result to make your own."
        )


class ResultGone(InvalidRequest):
    """A result image Vary or /show needs is no longer kept (past the retention period)."""

    def __init__(self) -> None:
        super().__init__("That result's images are no longer stored.")


class AlreadyEnded(RemixbotError):
    """A control for a job that has already ended (Cancel on a finished job)."""

    def __init__(self) -> None:
        super().__init__("That remix has already finished; there is nothing to cancel.")


@dataclass(frozen=True)
class JobImages:
    """A job's prepared images: the input, style references, and an edit's mask."""

    input: PreparedImage
    refs: list[PreparedImage]
    mask: EncodedImage | None = None  # at the input's exact size, pure black and white


@dataclass(frozen=True)
class Requester:
    """Who asked, where, and what to reply to; ids are Discord snowflakes (guild None = DM)."""

    user_id: int
    guild_id: int | None
    channel_id: int | None
    role_ids: tuple[int, ...] = ()
    interaction_id: int | None = None
    request_message_id: int | None = None


def intake_limits(settings: Settings) -> IntakeLimits:
    """Intake limits whose auto-picked ratios are ones the configured backend accepts."""
    ratios = BACKEND_CLASSES[settings.backend].ratios_for(settings)
    return dataclasses.replace(IntakeLimits.from_settings(settings), ratios=ratios)


def with_chosen_ratio(request: RemixRequest, prepared: PreparedImage) -> RemixRequest:
    """Send the ratio intake cropped to (one the backend accepts: see intake_limits)."""
    if request.resolution or not prepared.aspect_ratio or request.aspect_ratio:
        return request
    return dataclasses.replace(request, aspect_ratio=prepared.aspect_ratio)


def _stage_for(admission: Admission) -> Callable[[str], None]:
    """The stages members see: generating and uploading (a task's submission is not news)."""

    def stage(name: str) -> None:
        if name in ("generating", "uploading"):
            admission.set_stage(name)

    return stage


class RepeatGuard:
    """Remembers (message, member) pairs for a few seconds, so a repeat counts once."""

    def __init__(self, window: float = REPEAT_WINDOW, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self._clock = clock
        self._seen: dict[tuple[int, int], float] = {}

    def first(self, message_id: int, user_id: int) -> bool:
        """True the first time within the window; False for a repeat."""
        now = self._clock()
        for key in [k for k, at in self._seen.items() if now - at > self.window]:
            del self._seen[key]
        key = (message_id, user_id)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


class _QueuedRun:
    """The run a queued job's ticket carries: one small object per waiting job (a closure over
    the same four names is six objects for the garbage collector's full passes to walk)."""

    __slots__ = ("job", "presenter", "service", "task")

    def __init__(
        self, service: RemixService, job: Job, task: JobTask, presenter: Presenter
    ) -> None:
        self.service = service
        self.job = job
        self.task = task
        self.presenter = presenter

    async def __call__(self, admission: Admission) -> Posted | None:
        return await self.service._run_queued(self.job, self.task, self.presenter, admission)


class RemixService:
    """Accepts remix, reroll and retry jobs, runs them through the lifecycle, recovers the rest."""

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
        self.scheduler = scheduler
        self.limits = intake_limits(settings)
        self.lifecycle = JobLifecycle(
            store=store,
            backend=backend,
            download_session=download_session,
            policy=DownloadPolicy.from_settings(settings),
            verify=pool.check_result,
            work_dir=work_dir or settings.data_dir / "work",
            undelivered_dir=settings.data_dir / "undelivered",
        )
        self.repeats = RepeatGuard()
        self.moderation = Moderation(store)
        self._intake = asyncio.Semaphore(INTAKE_AT_ONCE)
        self._resumed: set[asyncio.Task[None]] = set()
        self._presenters: dict[int, Presenter] = {}
        self._guilds: dict[int, int | None] = {}  # the server of each job in the scheduler
        self._fresh: OrderedDict[int, JobImages] = OrderedDict()  # by job id, newest last

    @property
    def stopping(self) -> bool:
        """True once shutdown began."""
        return self.lifecycle.stopping

    # --- requests ------------------------------------------------------------------------

    def build_request(self, **options: Any) -> RemixRequest:
        """Validate options into a RemixRequest this server and backend accept (InvalidRequest)."""
        request = RemixRequest(**{k: v for k, v in options.items() if v is not None})
        self.check_request(request)
        return request

    def check_request(self, request: RemixRequest) -> None:
        """The server's per-job cap and the backend's own limits, once per job (InvalidRequest)."""
        cap = self.settings.max_images_per_job
        if request.num_images > cap:
            raise InvalidRequest(
                f"num_images must be from 1 to {cap} on this server, not {request.num_images}."
            )
        self.backend.check(request, request.style_ref_count)

    # --- accepting -----------------------------------------------------------------------

    def intake_turn(self) -> asyncio.Semaphore:
        """Hold it while downloading and preparing a member's upload (a few at a time)."""
        return self._intake

    async def precheck(self, who: Requester, images: int, prompt: str | None = None) -> None:
        """The refusals known before any download (the server's channel list, pause and prompt
        block list, queue room, block, quota), so a member can be answered at once and
        privately, and a refused control costs no work. Reserving checks them all again."""
        await self.moderation.check(who.guild_id, who.channel_id, who.user_id, prompt)
        self.scheduler.refuse_if_full(who.user_id)
        status = await self.store.quota_status(who.user_id, who.guild_id, who.role_ids)
        if status.blocked_reason is not None:
            self.lifecycle.metrics.quota_refused()
            raise UserBlocked(status.blocked_reason)
        if status.remaining is not None and images > status.remaining:
            self.lifecycle.metrics.quota_refused()
            raise QuotaExceeded.from_status(status, images)

    async def remix(
        self,
        who: Requester,
        request: RemixRequest,
        image: bytes,
        refs: Sequence[bytes],
        presenter: Presenter,
        mask: bytes | None = None,
    ) -> Admission | None:
        """Prepare a member's upload (and an edit's mask), then accept it as a new job.

        `request` was checked with `build_request` (the backend's check runs once per job).
        """
        hold = self.scheduler.check_admission(who.user_id)
        try:
            prepared = await self.pool.prepare(
                image, aspect_ratio=request.aspect_ratio, limits=self.limits
            )
            ref_images = await self.pool.prepare_style_refs(list(refs), self.limits) if refs else []
            # The mask goes through the image's own crop and scale (or comes from its
            # transparent areas) on a backend that edits; the others refused a mask already.
            edit_mask = (
                await edit_mask_off_loop(self.pool, prepared, mask, self.limits)
                if getattr(self.backend, "takes_mask", False)
                else None
            )
        except BaseException:
            hold.release()
            raise
        images = JobImages(prepared, list(ref_images), edit_mask)
        return await self._accept(
            who, with_chosen_ratio(request, prepared), images, presenter, hold=hold
        )

    async def reroll(self, who: Requester, job_id: int, presenter: Presenter) -> Admission | None:
        """Run a stored job again with a new seed, charged to ``who``."""
        parent, request, images = await self._stored(job_id)
        return await self._again(who, parent, request.with_seed(None), images, presenter, "reroll")

    async def retry(self, who: Requester, job_id: int, presenter: Presenter) -> Admission | None:
        """Run a stored job again exactly (same seed), charged to ``who``: after a lost run."""
        parent, request, images = await self._stored(job_id)
        if parent.user_id != who.user_id:
            raise NotYourJob()
        return await self._again(who, parent, request, images, presenter, "remix")

    async def edit(
        self,
        who: Requester,
        job_id: int,
        presenter: Presenter,
        *,
        prompt: str,
        negative_prompt: str | None,
        image_weight: int | str | None,
    ) -> Admission | None:
        """Run a stored job's input again with an edited prompt, negative prompt and image
        weight (None keeps it; its other options and its seed kept), charged to ``who``."""
        parent, request, images = await self._stored(job_id)
        edited = self.edited_request(request, prompt, negative_prompt, image_weight)
        return await self._again(who, parent, edited, images, presenter, "remix", rerun=False)

    def edited_request(
        self,
        request: RemixRequest,
        prompt: str,
        negative_prompt: str | None,
        image_weight: int | str | None,
    ) -> RemixRequest:
        """A stored request with what a member typed into Edit, validated as a new request
        (InvalidRequest names the field); a weight of None keeps the stored one."""
        weight = request.image_weight if image_weight is None else image_weight
        edited = dataclasses.replace(
            request,
            prompt=prompt,
            negative_prompt=negative_prompt,
            image_weight=weight,  # type: ignore[arg-type]  # a typed number is checked here
        )
        self.check_request(edited)
        return edited

    async def vary(
        self, who: Requester, job_id: int, index: int, strength: str, presenter: Presenter
    ) -> Admission | None:
        """Remix one of a job's results (1-based `index`) with the job's prompt: subtle keeps
        close to it, strong strays further. Charged to ``who``."""
        weight = VARY_WEIGHTS[strength]
        parent = await self.store.find_job(job_id)
        if parent is None:
            raise ResultGone()
        keys = await self.store.result_keys(job_id)
        data = await self.store.results.get(keys[index - 1]) if 0 < index <= len(keys) else None
        if data is None:
            raise ResultGone()
        request = dataclasses.replace(
            RemixRequest.from_dict(parent.request), image_weight=weight, has_mask=False
        ).with_seed(None)
        try:
            # The server's cap or backend may have changed since: check before reserving.
            self.check_request(request)
        except InvalidRequest as exc:
            raise NotRerunnable(exc, "reroll") from None
        await self.precheck(who, request.num_images, request.prompt)
        hold = self.scheduler.check_admission(who.user_id)
        try:
            # A result is a backend's image, not a prepared input: it goes through intake.
            prepared = await self.pool.prepare(
                data, aspect_ratio=request.aspect_ratio, limits=self.limits
            )
            refs = [
                await self._load(key, "style reference images") for key in parent.style_ref_keys
            ]
        except BaseException:
            hold.release()
            raise
        images = JobImages(prepared, refs)
        return await self._accept(
            who, with_chosen_ratio(request, prepared), images, presenter, hold=hold, parent=job_id
        )

    async def cancel(self, job_id: int, user_id: int | None) -> None:
        """Cancel a queued job (``user_id`` None: an admin) and close it refunded, its member
        told. Raises NotJobOwner, JobRunning (it may be billed: it goes on) or AlreadyEnded."""
        if self.scheduler.cancel(job_id, user_id=user_id):
            presenter = self._presenters.pop(job_id, None)
            self._guilds.pop(job_id, None)
            await self.lifecycle.not_started(job_id, presenter)
            return
        job = await self.store.find_job(job_id)
        if job is None or job.final:
            raise AlreadyEnded()
        # Open but not in this process's queue: running here, or another process's job.
        raise JobRunning()

    async def pause_server(self, guild_id: int) -> int:
        """Pause a server: it takes no new jobs, and its jobs still queued here are handed back
        (closed not started, refunded, each member told the admins paused it); jobs already
        running go on (they may be billed). How many were handed back.

        The pause is stored first, so a job of the server that starts meanwhile, here or in
        another process on the same books, is stopped before its backend call (`_queue`)."""
        await self.store.set_paused(guild_id, True)
        handed = 0
        for admission in self.scheduler.queued():
            job_id = int(admission.job_id)
            if self._guilds.get(job_id) != guild_id:
                continue
            try:
                cancelled = self.scheduler.cancel(job_id)
            except JobRunning:  # it started while the others were closed: it stops itself
                continue
            if cancelled:
                presenter = self._presenters.pop(job_id, None)
                self._guilds.pop(job_id, None)
                await self.lifecycle.not_started(job_id, presenter, ServerPaused())
                handed += 1
        return handed

    async def _paused(self, job: Job) -> bool:
        """True when the job's server was paused since it was queued (by an admin here or in
        another process). A failed look makes it False: the job was accepted unpaused."""
        try:
            return await self.moderation.paused(job.guild_id)
        except Exception:
            log.warning("job %s: could not read its server's pause", job.id, exc_info=True)
            return False

    async def _again(
        self,
        who: Requester,
        parent: Job,
        request: RemixRequest,
        images: JobImages,
        presenter: Presenter,
        kind: str,
        *,
        rerun: bool = True,
    ) -> Admission | None:
        try:
            # The server's cap or backend may have changed since: check before reserving.
            self.check_request(request)
        except InvalidRequest as exc:
            if not rerun:
                raise
            raise NotRerunnable(exc, "reroll" if kind == "reroll" else "retry") from None
        hold = self.scheduler.check_admission(who.user_id)
        return await self._accept(
            who, request, images, presenter, hold=hold, kind=kind, parent=parent.id
        )

    async def _stored(self, job_id: int) -> tuple[Job, RemixRequest, JobImages]:
        """A stored job with its request and its stored (already prepared) images, unchanged."""
        job = await self.store.find_job(job_id)
        if job is None or not job.input_key:
            raise InputGone()
        return job, RemixRequest.from_dict(job.request), await self._stored_images(job)

    async def _stored_images(self, job: Job) -> JobImages:
        """The job's input, style references and mask as stored when it was accepted: reused
        exactly, never prepared a second time."""

        refs = [await self._load(key, "style reference images") for key in job.style_ref_keys]
        mask = (await self._load(job.mask_key, "mask")).image if job.mask_key else None
        return JobImages(await self._load(job.input_key, "input image"), refs, mask)

    def _keep_fresh(self, job_id: int, images: JobImages) -> None:
        """Hold a just-accepted job's prepared images for its run (the oldest beyond
        FRESH_KEPT are dropped: their jobs read their input back from disk)."""
        self._fresh[job_id] = images
        while len(self._fresh) > FRESH_KEPT:
            self._fresh.popitem(last=False)

    async def _images_for_run(self, job: Job) -> JobImages:
        """The job's images as prepared when it was accepted, if still held and its input is
        still stored (a member who forgot their data meanwhile gets no run); else as stored."""
        fresh = self._fresh.pop(job.id, None)
        if fresh is not None and job.input_key:
            if await asyncio.to_thread(self.store.inputs.exists_sync, job.input_key):
                return fresh
        return await self._stored_images(job)

    async def _load(self, key: str | None, what: str) -> PreparedImage:
        """A stored, already prepared image as it was stored (InputGone when it is not)."""
        data = await self.store.inputs.get(key) if key else None
        if data is None:
            raise InputGone(what)
        return await self.pool.load_prepared(data)

    async def _accept(
        self,
        who: Requester,
        request: RemixRequest,
        images: JobImages,
        presenter: Presenter,
        *,
        hold: Any,
        kind: str = "remix",
        parent: int | None = None,
    ) -> Admission | None:
        """Store the input, reserve, and queue; None if this interaction was seen before.

        Raises (nothing charged): the server's refusals (moderation.py), QuotaRefused,
        QueueFull and friends.
        """
        try:
            await self.moderation.check(who.guild_id, who.channel_id, who.user_id, request.prompt)
            prepared = images.input
            input_key = await self.store.inputs.put(prepared.image.data)
            ref_keys = [await self.store.inputs.put(r.image.data) for r in images.refs]
            mask = images.mask
            mask_key = await self.store.inputs.put(mask.data) if mask else None
            job = await self.lifecycle.reserve(
                NewJob(
                    interaction_id=who.interaction_id,
                    guild_id=who.guild_id,
                    channel_id=who.channel_id,
                    user_id=who.user_id,
                    kind=kind,
                    parent_job_id=parent,
                    request=request.to_dict(),
                    input_key=input_key,
                    style_ref_keys=ref_keys,
                    backend=self.backend.name,
                    images=request.num_images,
                    role_ids=who.role_ids,
                    request_message_id=who.request_message_id,
                    mask_key=mask_key,
                )
            )
        except BaseException:
            hold.release()
            raise
        if job.replayed:  # a replayed interaction: the first handler owns the job
            hold.release()
            return None
        self._keep_fresh(job.id, images)
        # The input waits on disk, not in memory: a thousand queued jobs cost a thousand rows.
        task = JobTask(request, None, role_ids=who.role_ids, changes=tuple(prepared.changes))
        try:
            return self._queue(job, task, presenter, hold=hold)
        except RemixbotError as exc:
            await self.lifecycle.not_started(job.id, None, exc)
            raise

    def _queue(
        self,
        job: Job,
        task: JobTask,
        presenter: Presenter,
        *,
        hold: Any = None,
        recovered: bool = False,
    ) -> Admission:
        """Hand a reserved job to the scheduler; the lifecycle runs it when its turn comes."""
        presenter = self.moderation.watching(presenter, job.guild_id, job.user_id)
        run = _QueuedRun(self, job, task, presenter)
        ticket = JobTicket(job_id=job.id, user_id=job.user_id, images=job.images_requested, run=run)
        admission = self.scheduler.submit(ticket, hold=hold, recovered=recovered)
        self._presenters[job.id] = presenter
        self._guilds[job.id] = job.guild_id
        self._watch(admission, presenter)
        return admission

    async def _run_queued(
        self, job: Job, task: JobTask, presenter: Presenter, admission: Admission
    ) -> Posted | None:
        """A queued job's turn: not while its server is paused; its stored images read back, then
        the lifecycle's run."""
        try:
            if await self._paused(job):  # before anything is sent: nothing is billed
                await self.lifecycle.not_started(job.id, presenter, ServerPaused())
                return None
            try:
                stored = await self._images_for_run(job)
            except Exception as exc:  # the stored input is gone (forgotten, swept), or worse
                if not isinstance(exc, InvalidRequest):
                    log.exception("job %s: its stored images could not be read", job.id)
                await self.lifecycle.not_started(job.id, presenter, exc)
                return None
            ready = dataclasses.replace(
                task,
                image=stored.input.image,
                refs=[r.image for r in stored.refs],
                mask=stored.mask,
            )
            return await self.lifecycle.run(
                job, ready, presenter, stage=_stage_for(admission), slot=admission
            )
        except Exception as exc:  # a bug escaped the lifecycle: its books still close
            log.exception("job %s crashed", job.id)
            await asyncio.shield(self.lifecycle.crashed(job.id, presenter, exc))
            return None
        finally:
            self._presenters.pop(job.id, None)
            self._guilds.pop(job.id, None)
            self._fresh.pop(job.id, None)

    def _watch(self, admission: Admission, presenter: Presenter) -> None:
        """Show progress on the presenter until the job leaves the scheduler (one task shows
        every queued job's: bot/jobs/publisher.py)."""
        self.scheduler.watch(admission, presenter.progress)

    # --- after a restart -----------------------------------------------------------------

    def resumable_backends(self) -> Collection[str]:
        """Backend names whose jobs this process can resume (their task ids are saved)."""
        return {self.backend.name} if getattr(self.backend, "resumable", False) else set()

    async def reconcile(self) -> ReconcileReport:
        """Claim the jobs of processes that are gone (and close what cannot go on)."""
        report = await self.store.reconcile(
            resumable=self.resumable_backends(), claim_discord_jobs=True
        )
        self.lifecycle.reconciled(report)
        return report

    async def recover(
        self,
        report: ReconcileReport,
        presenter_for: PresenterFor,
        roles_for: RolesFor = _no_roles,
    ) -> None:
        """Carry on with what a previous process left: queued jobs run again, tasks at the
        backend are resumed, and members of jobs lost at a synchronous backend are told."""
        for job in report.closed_unknown:
            presenter = presenter_for(job)
            if presenter is not None:
                await tell(presenter, Ending(Exit.CRASHED_AT_BACKEND, job.id))
        for job in report.requeue:
            try:
                await self._requeue(job, presenter_for(job), roles_for)
            except Exception:  # one job's trouble must not strand the others
                log.exception("job %s: could not be queued again", job.id)
        # Resumed tasks may take minutes at the backend: they run on their own.
        for job in report.resumable:
            task = asyncio.ensure_future(self._resume(job, presenter_for(job), roles_for))
            self._resumed.add(task)  # type: ignore[arg-type]
            task.add_done_callback(self._resumed.discard)

    async def _requeue(self, job: Job, presenter: Presenter | None, roles_for: RolesFor) -> None:
        """Queue a job accepted before a crash again: its input and request are stored."""
        if presenter is None:
            await self.lifecycle.not_started(job.id, None)
            return
        try:
            request = RemixRequest.from_dict(job.request)
            self.check_request(request)
        except InvalidRequest as exc:
            await self.lifecycle.not_started(job.id, presenter, exc)
            return
        task = JobTask(request, None, role_ids=await roles_for(job))
        log.info("job %s: queued again after a restart", job.id)
        self._queue(job, task, presenter, recovered=True)

    async def _resume(
        self, job: Job, presenter: Presenter | None, roles_for: RolesFor
    ) -> Posted | None:
        if presenter is None:  # nowhere to show it (started from the terminal)
            await self.store.fail(job.id, "started outside Discord; not resumed", "unknown")
            return None
        task = JobTask(RemixRequest.from_dict(job.request), None, role_ids=await roles_for(job))
        presenter = self.moderation.watching(presenter, job.guild_id, job.user_id)
        try:
            return await self.lifecycle.resume(job, task, presenter)
        except Exception:
            log.exception("job %s: resuming failed", job.id)
            return None

    async def watch_orphans(
        self,
        presenter_for: PresenterFor,
        roles_for: RolesFor = _no_roles,
        every: float | None = None,
    ) -> None:
        """Every `every` seconds, pick up the jobs of processes that died (runs until cancelled).

        By default every minute, or as often as a process's lease lasts when that is shorter (the
        books in PostgreSQL: a killed process's jobs are free once its lease runs out)."""
        if every is None:
            every = min(ORPHAN_CHECK_SECONDS, self.settings.lease_seconds)
        while True:
            await asyncio.sleep(every)
            try:
                report = await self.reconcile()
                if report.requeue or report.resumable or report.closed_unknown or report.failed:
                    log.info("picked up the open jobs of a process that is gone")
                await self.recover(report, presenter_for, roles_for)
            except Exception:
                log.warning("checking for the jobs of stopped processes failed", exc_info=True)

    # --- stopping ------------------------------------------------------------------------

    async def shutdown(self, grace: float) -> None:
        """Stop taking work while Discord is still connected: queued jobs are refunded and their
        members told; running jobs get ``grace`` seconds to finish and post; moderation-log
        posts in flight get a few more (`REPORT_GRACE_SECONDS`)."""
        self.lifecycle.stopping = True
        result = await self.scheduler.drain(grace)
        for ticket in result.returned:
            presenter = self._presenters.get(int(ticket.job_id))
            await self.lifecycle.not_started(int(ticket.job_id), presenter, SchedulerClosed())
        # Interrupted runs closed their own books (or were left open for resuming).
        await self.lifecycle.close()
        await self.close()
        # The log-channel posts of the jobs that ended, given their moment before Discord closes.
        await self.moderation.finish_reports()

    async def close(self) -> None:
        """Stop showing progress and the resumed tasks (the scheduler is closed by its owner)."""
        await self.scheduler.stop_watching()
        for task in list(self._resumed):
            task.cancel()
        for task in list(self._resumed):
            with contextlib.suppress(BaseException):
                await task

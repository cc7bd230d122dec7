"""The job scheduler: fair queue, per-user and global caps, in-flight image budget, progress."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.jobs.budget import InflightBudget
from bot.jobs.errors import (
    JobRunning,
    NotJobOwner,
    QueueFull,
    QueueTooLong,
    SchedulerClosed,
    UserQueueFull,
)
from bot.jobs.eta import DurationModel, Playout
from bot.jobs.fairqueue import FairQueue
from bot.jobs.publisher import PASS_SLICE, ProgressPublisher, Show
from bot.jobs.shared import SharedHolds, SharedSlots
from bot.jobs.ticket import Admission, JobId, JobState, JobTicket

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

# Every live job's (position, wait, eta).
Estimates = dict[JobId, tuple[int, float, float]]


# The longest pause() honoured (seconds).
MAX_PAUSE = 300.0
# The least pause after an in-flight 429 (seconds), whatever Retry-After says.
MIN_LIMITED_PAUSE = 0.5
# How long one simulation of the queue serves the watchers asking for their estimates (seconds).
ESTIMATES_TTL = 0.5
# Up to this many queued and running jobs, a change of the queue is published to every job on
# the next loop turn; a longer queue is published at most once per ESTIMATES_TTL (a pass costs
# in proportion to the queue, and a wave of arrivals would otherwise pay it once per arrival).
PUBLISH_AT_ONCE = 100


class AdmissionHold:
    """A place in the queue held between the pre-check and ``submit`` (while quota is reserved).

    Release it if the job is not submitted after all; it also lapses after the scheduler's
    ``hold_ttl`` seconds so a forgotten hold cannot keep a place forever.
    """

    def __init__(self, scheduler: Scheduler, user_id: int, expires_at: float) -> None:
        self._scheduler = scheduler
        self.user_id = user_id
        self.expires_at = expires_at
        self._active = True

    @property
    def active(self) -> bool:
        """True while the hold still reserves a place."""
        return self._active and self._scheduler._now() < self.expires_at

    def release(self) -> None:
        """Give the place back (idempotent)."""
        if self._active:
            self._active = False
            self._scheduler._drop_hold(self)

    def __enter__(self) -> AdmissionHold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class DrainResult:
    """What ``drain`` could not finish: tickets handed back unstarted, and runs it interrupted."""

    returned: list[JobTicket]
    interrupted: list[JobTicket]


@dataclass(frozen=True)
class SchedulerStats:
    """A summary for status commands and logs."""

    capacity: int
    inflight_images: int
    running: int
    queued: int
    held: int
    job_seconds: float
    closed: bool
    paused: bool


class Scheduler:
    """Runs admitted jobs fairly across users within a budget of images in flight at the backend.

    Rules (see docs/scheduler.md): jobs are served round-robin across users and FIFO per user;
    a job starts when it is the head of that order and its images fit in the free budget; nothing
    overtakes the head, so a large job cannot be starved by a stream of small ones; a job larger
    than the budget is clamped to the whole budget and runs alone. Single event loop only.
    """

    def __init__(
        self,
        inflight_images: int = 10,
        user_queue_cap: int = 3,
        queue_max: int = 50,
        *,
        clock: Callable[[], float] = time.monotonic,
        prior_job_seconds: float = 15.0,
        progress_interval: float = 3.0,
        eta_step: float = 5.0,
        hold_ttl: float = 120.0,
        run_timeout: float | None = 900.0,
        cancel_grace: float = 2.0,
        max_wait: float | None = None,
        shared: SharedSlots | None = None,
    ) -> None:
        for name, value in (
            ("inflight_images", inflight_images),
            ("user_queue_cap", user_queue_cap),
            ("queue_max", queue_max),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        self.capacity = inflight_images
        self.budget = InflightBudget(inflight_images)
        # Other processes on the same backend key count against the same budget (bot/jobs/shared.py).
        self.shared = SharedHolds(shared) if shared is not None else None
        # A job is refused when it would wait longer than this to start (None: no limit).
        self.max_wait = max_wait
        self.user_queue_cap = user_queue_cap
        self.queue_max = queue_max
        self.progress_interval = progress_interval
        self.eta_step = eta_step
        self.hold_ttl = hold_ttl
        self.run_timeout = run_timeout
        self.cancel_grace = cancel_grace
        self._clock = clock
        self._durations = DurationModel(prior_job_seconds)  # a whole run, for ETAs
        # How long a call holds its backend slot: what frees the budget for the next job.
        self._backend_time = DurationModel(prior_job_seconds)
        self._slot_waiters: collections.deque[tuple[Admission, asyncio.Future[None]]] = (
            collections.deque()
        )
        self._queue: FairQueue[Admission] = FairQueue()
        self._running: dict[JobId, Admission] = {}
        self._jobs: dict[JobId, Admission] = {}
        self._tasks: dict[asyncio.Task[None], Admission] = {}
        self._holds: dict[int, set[AdmissionHold]] = {}
        self._inflight = 0
        self._epoch = 0  # bumped on every change of the queue, for the estimates' cache
        # (epoch, when, every live job's estimate, the playout after the last queued job)
        self._estimates_cache: tuple[int, float, Estimates, Playout] | None = None
        # (when, the playout after the last queued job, with the jobs queued since placed too)
        self._tail: tuple[float, Playout] | None = None
        self._closed = False
        self._pause: asyncio.TimerHandle | None = None
        self._publisher = ProgressPublisher(self, interval=progress_interval, eta_step=eta_step)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Scheduler:
        """Build a scheduler from REMIXBOT_INFLIGHT_IMAGES, _USER_QUEUE_CAP and _QUEUE_MAX.

        The hard run limit defaults to the longest backend wait plus 5 minutes for downloads
        and the Discord upload, so it only ever stops a run that is truly stuck.
        """
        longest = max(settings.backend_timeout, settings.task_max_wait, 600.0)
        kwargs.setdefault("run_timeout", longest + 300.0)
        kwargs.setdefault("max_wait", settings.max_wait)
        return cls(settings.inflight_images, settings.user_queue_cap, settings.queue_max, **kwargs)

    # Introspection ---------------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        """Images currently charged against the budget."""
        return self._inflight

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closed

    @property
    def job_seconds(self) -> float:
        """The current estimate of one job's duration."""
        return self._durations.seconds

    def get(self, job_id: JobId) -> Admission | None:
        """The admission of a queued or running job, or None."""
        return self._jobs.get(job_id)

    def queued(self, user_id: int | None = None) -> list[Admission]:
        """Queued jobs in the order they would start (optionally only one user's)."""
        order = self._queue.order()
        return order if user_id is None else [a for a in order if a.user_id == user_id]

    def running(self) -> list[Admission]:
        """Running jobs, oldest first."""
        return list(self._running.values())

    @property
    def publishing(self) -> bool:
        """True while the one task that publishes every job's progress runs (it ends when no
        job is queued or running)."""
        return self._publisher.running

    # Watching --------------------------------------------------------------------------------

    def watch(self, admission: Admission, show: Show) -> None:
        """Show a job's progress through ``show`` until it leaves the scheduler.

        One task shows every watched job (bot/jobs/publisher.py), with the throttle of
        ``Admission.updates``; ``show`` is awaited for one progress at a time per job, and its
        errors are logged, never raised: progress is cosmetic.
        """
        self._publisher.watch(admission, show)

    async def stop_watching(self) -> None:
        """Stop showing progress (at shutdown, after ``drain``): cancel any show in flight."""
        await self._publisher.close()

    def stats(self) -> SchedulerStats:
        """Counts and the duration estimate, for a status command."""
        self._purge_holds()
        return SchedulerStats(
            self.capacity,
            self._inflight,
            len(self._running),
            len(self._queue),
            self._held_count(),
            self._durations.seconds,
            self._closed,
            self._pause is not None,
        )

    # Admission -------------------------------------------------------------------------------

    def check_admission(self, user_id: int) -> AdmissionHold:
        """Refuse now (QueueFull, UserQueueFull, SchedulerClosed) or hold a place for ``submit``.

        Call it before reserving quota; pass the hold to ``submit``. A held submit is refused only
        if the scheduler closed in between (SchedulerClosed) — then refund the reservation.
        """
        self.refuse_if_full(user_id)
        hold = AdmissionHold(self, user_id, self._now() + self.hold_ttl)
        self._holds.setdefault(user_id, set()).add(hold)
        return hold

    def submit(
        self, ticket: JobTicket, *, hold: AdmissionHold | None = None, recovered: bool = False
    ) -> Admission:
        """Queue a job (it starts at once if it is the head and fits); return its admission.

        Without an active hold the caps are checked here and may refuse; nothing is queued then.
        `recovered` jobs were accepted before a restart: they skip the caps.
        """
        if self._closed:
            if hold is not None:
                hold.release()
            raise SchedulerClosed()
        if ticket.job_id in self._jobs:
            raise ValueError(f"job {ticket.job_id!r} is already queued or running")
        if hold is not None and hold._scheduler is not self:
            raise ValueError("that hold belongs to another scheduler")
        if hold is not None and hold.user_id != ticket.user_id:
            raise ValueError("that hold belongs to another user")
        if hold is not None and hold.active:
            hold.release()  # the job takes the held place
        elif not recovered:
            if hold is not None:
                hold.release()
            self.refuse_if_full(ticket.user_id)
        admission = Admission(self, ticket, min(ticket.images, self.capacity), self._now())
        self._jobs[ticket.job_id] = admission
        self._queue.push(ticket.user_id, admission)
        if self._tail is not None:  # the next new job waits behind this one too
            self._tail[1].place(admission.cost)
        self._pump()
        self._changed()
        return admission

    def cancel(self, job_id: JobId, *, user_id: int | None = None) -> bool:
        """Cancel a queued job; True if cancelled, False if unknown or already finished.

        ``user_id`` is the member asking (None for an admin). Raises NotJobOwner for someone
        else's job and JobRunning for a job that already started: its backend call may be billed,
        so it is left to finish. After True the job's run is never called; refund its reservation.
        """
        admission = self._jobs.get(job_id)
        if admission is None or admission.state.final:
            return False
        if user_id is not None and admission.user_id != user_id:
            raise NotJobOwner()
        if admission.state is JobState.RUNNING:
            raise JobRunning()
        self._queue.remove(admission.user_id, admission)
        del self._jobs[job_id]
        self._tail = None  # a place freed: play the queue through again when next asked
        admission._finish(JobState.NOT_RUN, self._now())
        self._pump()
        self._changed()
        return True

    def pause(self, seconds: float) -> None:
        """Start no new job for ``seconds`` (e.g. the backend's Retry-After on a 429).

        Running jobs go on and jobs are still admitted; a later pause extends, never shortens.
        """
        loop = asyncio.get_running_loop()
        # A backend's Retry-After is untrusted: never stop the whole queue for long.
        seconds = min(max(seconds, 0.0), MAX_PAUSE) if math.isfinite(seconds) else MAX_PAUSE
        until = loop.time() + seconds
        if self._pause is not None:
            if self._pause.when() >= until:
                return
            self._pause.cancel()
        self._pause = loop.call_at(until, self._resume)

    @property
    def paused(self) -> bool:
        """True while ``pause`` holds back new starts."""
        return self._pause is not None

    def _pause_left(self) -> float:
        if self._pause is None:
            return 0.0
        return max(self._pause.when() - asyncio.get_running_loop().time(), 0.0)

    def _resume(self) -> None:
        self._pause = None
        self._pump()
        self._changed()

    # Shutdown --------------------------------------------------------------------------------

    def close(self) -> list[JobTicket]:
        """Stop taking and starting work; hand back the queued (never started) tickets.

        Each handed-back admission ends NOT_RUN and its ``result()`` raises JobNotStarted.
        Running jobs go on; await ``drain`` for them. Calling it again returns [].
        """
        if self._closed:
            return []
        self._closed = True
        if self._pause is not None:
            self._pause.cancel()
            self._pause = None
        for holds in self._holds.values():
            for hold in holds:
                hold._active = False
        self._holds.clear()
        now = self._now()
        returned = self._queue.clear()
        for admission in returned:
            del self._jobs[admission.job_id]
            admission._finish(JobState.NOT_RUN, now)
        self._changed()
        return [a.ticket for a in returned]

    async def drain(self, timeout: float) -> DrainResult:  # noqa: ASYNC109 (required bound)
        """Close if needed, wait up to ``timeout`` s for running jobs, then interrupt the rest.

        ``returned`` holds the tickets this call's own close handed back (empty if ``close`` was
        called before: those were returned then). ``interrupted`` holds runs cancelled at the
        timeout: they may have been billed, so treat them as outcome unknown.
        """
        returned = self.close()
        tasks = dict(self._tasks)
        interrupted: list[JobTicket] = []
        if tasks:
            _, pending = await asyncio.wait(list(tasks), timeout=timeout)
            for task in pending:
                admission = tasks[task]
                admission._interrupting = True
                interrupted.append(admission.ticket)
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=self.cancel_grace)
        return DrainResult(returned, interrupted)

    # Internals -------------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock()

    def _purge_holds(self) -> None:
        now = self._now()
        for user_id in list(self._holds):
            live = {h for h in self._holds[user_id] if h._active and now < h.expires_at}
            if live:
                self._holds[user_id] = live
            else:
                del self._holds[user_id]

    def _held_count(self, user_id: int | None = None) -> int:
        if user_id is not None:
            return len(self._holds.get(user_id, ()))
        return sum(len(h) for h in self._holds.values())

    def _drop_hold(self, hold: AdmissionHold) -> None:
        holds = self._holds.get(hold.user_id)
        if holds is not None:
            holds.discard(hold)
            if not holds:
                del self._holds[hold.user_id]

    def refuse_if_full(self, user_id: int, images: int = 1) -> None:
        """Raise what check_admission would (UserQueueFull, QueueTooLong, QueueFull,
        SchedulerClosed); hold nothing. Also for answering at once, before any slow work."""
        if self._closed:
            raise SchedulerClosed()
        self._purge_holds()
        # The member's own cap first: it is the more useful sentence when both apply.
        if self._queue.count(user_id) + self._held_count(user_id) >= self.user_queue_cap:
            raise UserQueueFull(self.user_queue_cap)
        if self.max_wait is not None:
            wait = self.estimated_wait(images)
            if wait > self.max_wait:
                raise QueueTooLong(wait)
        # The memory bound: a safety net far above what the wait admits.
        if len(self._queue) + self._held_count() >= self.queue_max:
            raise QueueFull()

    def estimated_wait(self, images: int = 1) -> float:
        """Seconds a new job of `images` would wait to start, from the measured backend time
        and the in-flight budget (held places count as one-image jobs).

        Every member asking for a job asks this, in waves: the queue is played through at most
        once per ESTIMATES_TTL, and the jobs queued since are placed after it (a job that
        started or finished since moves the answer by less than that time).
        """
        play = self._admission_tail().copy()
        for _ in range(self._held_count()):
            play.place(1)
        return play.place(min(images, self.capacity))[0]

    def _admission_tail(self) -> Playout:
        """The playout after the last queued job (at most ESTIMATES_TTL old, with the jobs
        queued since placed after it)."""
        now = self._now()
        if self._tail is None or now - self._tail[0] >= ESTIMATES_TTL:
            self._tail = (now, self._cached_estimates()[1].copy())
        return self._tail[1]

    def _pump(self) -> None:
        """Give slots back to retried calls first, then start jobs from the head of the fair
        order, while each fits in the free budget."""
        if self._closed or self._pause is not None:
            return
        while self._slot_waiters:
            admission, waiter = self._slot_waiters[0]
            if waiter.done():  # its run was cancelled while it waited
                self._slot_waiters.popleft()
                continue
            if self._need(admission) > self.budget.value - self._inflight:
                return  # a retried call keeps its turn ahead of new jobs
            self._slot_waiters.popleft()
            self._take_slot(admission)
            waiter.set_result(None)
        while True:
            head = self._queue.peek()
            if head is None or self._need(head) > self.budget.value - self._inflight:
                return  # the head keeps its turn; nothing overtakes it
            self._queue.pop()
            self._start(head)

    def _need(self, admission: Admission) -> int:
        """Images a job takes from the budget: its own, clamped to the budget (it runs alone)."""
        return min(admission.cost, self.budget.value)

    def _take_slot(self, admission: Admission) -> None:
        admission.held = self._need(admission)
        self._inflight += admission.held
        admission.slot_held = True
        admission.slot_at = self._now()

    def _release_slot(self, admission: Admission) -> None:
        """The backend answered (or the run ended): its images no longer count as in flight."""
        if self.shared is not None:
            self.shared.give(admission.job_id)
        if admission.slot_held:
            admission.slot_held = False
            self._inflight -= admission.held
            self._pump()
            self._changed()

    async def _acquire_slot(self, admission: Admission) -> None:
        """Wait for a backend slot again (after a 429), ahead of jobs not yet started."""
        if not admission.slot_held:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._slot_waiters.append((admission, waiter))
            self._pump()
            await waiter
        if self.shared is not None:  # and a place in the count every process shares
            await self.shared.take(admission.job_id, admission.held, self.budget.value)

    def _backend_answered(self, admission: Admission) -> None:
        if admission.slot_held and admission.slot_at is not None:
            self._backend_time.observe(self._now() - admission.slot_at)
        self.budget.accepted()
        self._release_slot(admission)

    def _backend_limited(
        self, admission: Admission, retry_after: float | None, limit: int | None
    ) -> None:
        """An in-flight 429: learn from it, and slow everyone down after a run of them."""
        sent_at = admission.slot_at if admission.slot_at is not None else self._now()
        self.budget.limited(sent_at, self._now(), limit)
        # Never a hot loop of retries: every start waits at least a moment after a 429.
        pause = max(retry_after or 0.0, self.budget.slowdown(), MIN_LIMITED_PAUSE)
        if pause > 0:
            self.pause(pause)
        self._release_slot(admission)

    def _start(self, admission: Admission) -> None:
        self._take_slot(admission)
        admission.state = JobState.RUNNING
        admission.started_at = self._now()
        self._running[admission.job_id] = admission
        admission._publish()  # a start is told at once; the queue's moves with the next pass
        task = asyncio.create_task(self._run(admission), name=f"remix-job-{admission.job_id}")
        self._tasks[task] = admission
        task.add_done_callback(self._tasks.pop)

    async def _run(self, admission: Admission) -> None:
        """Run one job; whatever happens, give its images back and start the next.

        The job ran, whatever it came to: the run itself closes its books (a time limit or a
        drain cancels it, and it handles that too).
        """
        value, error = None, None
        started = self._now()
        deadline = asyncio.timeout(self.run_timeout)
        try:
            async with deadline:
                value = await admission.ticket.run(admission)
        except TimeoutError as exc:
            error = exc
            log.warning("job %s stopped at the time limit", admission.job_id)
        except asyncio.CancelledError as exc:
            if not admission._interrupting:
                raise  # cancelled by someone else (loop shutdown): let it propagate
            error = exc
            log.warning("job %s interrupted by shutdown", admission.job_id)
        except Exception as exc:
            error = exc
            log.exception("job %s crashed", admission.job_id)
        finally:
            now = self._now()
            if self.shared is not None:
                self.shared.give(admission.job_id)
            if admission.slot_held:  # a run that never said the backend answered held it all
                if error is None and admission.slot_at is not None:
                    self._backend_time.observe(now - admission.slot_at)
                admission.slot_held = False
                self._inflight -= admission.held
            self._running.pop(admission.job_id, None)
            self._jobs.pop(admission.job_id, None)
            if error is None:
                self._durations.observe(now - started)
            if not admission.state.final:
                admission._finish(JobState.RAN, now, value=value, error=error)
            self._pump()
            self._changed()

    def _estimates(self) -> Estimates:
        """(position, wait, eta) for every live job, from one simulation at the current time."""
        return self._cached_estimates()[0]

    def _cached_estimates(self) -> tuple[Estimates, Playout]:
        """Every live job's estimate and the playout after the last queued job.

        Watchers of a long queue ask at the same moments (their idle refreshes line up), and
        every member asking for a job asks for a new job's wait: one simulation serves them all
        until the queue changes or ESTIMATES_TTL passes.
        """
        now = self._now()
        cached = self._estimates_cache
        if cached is not None and cached[0] == self._epoch and now - cached[1] < ESTIMATES_TTL:
            return cached[2], cached[3]
        out, tail = self._simulate_all(now)
        self._estimates_cache = (self._epoch, now, out, tail)
        return out, tail

    def _simulate_all(self, now: float) -> tuple[Estimates, Playout]:
        holding = [a for a in self._running.values() if a.slot_held]
        order = self._queue.order()
        # Slots free at the backend's pace; a job then also downloads and posts (the tail).
        backend = self._backend_time.seconds
        tail = max(self._durations.seconds - backend, 0.0)
        play = Playout(
            self.budget.value,
            [(a.held, now - (a.slot_at or now)) for a in holding],
            backend,
            not_before=self._pause_left(),
        )
        out: Estimates = {}
        for a in self._running.values():
            out[a.job_id] = self._running_estimate(a, now)
        for i, a in enumerate(order, start=1):
            wait, finish = play.place(a.cost)
            out[a.job_id] = (i, wait, finish + tail)
        return out, play

    def _running_estimate(self, admission: Admission, now: float) -> tuple[int, float, float]:
        elapsed = now - (admission.started_at or now)
        seconds = self._durations.seconds
        return 0, 0.0, max(seconds - elapsed, seconds * 0.2)

    def _estimate(self, admission: Admission) -> tuple[int | None, float | None, float | None]:
        """(position, wait, eta) of one job; None for a job no longer here."""
        if admission.job_id not in self._jobs or self._jobs[admission.job_id] is not admission:
            return None, None, None
        if admission.state is JobState.RUNNING:
            return self._running_estimate(admission, self._now())
        return self._estimates().get(admission.job_id, (None, None, None))

    def _changed(self) -> None:
        """The queue changed: the publisher tells every job whose visible progress moved."""
        self._epoch += 1
        self._publisher.poke()

    # The publisher's side (bot/jobs/publisher.py) ---------------------------------------------

    def _live(self) -> int:
        return len(self._jobs)

    def _publish_gap(self) -> float:
        return (
            0.0
            if len(self._jobs) <= PUBLISH_AT_ONCE
            else min(self.progress_interval, ESTIMATES_TTL)
        )

    def _publish_all(self) -> Iterator[None]:
        """Publish to every live job whose visible progress moved (one simulation for all), a
        slice of PASS_SLICE jobs at a time: the publisher lets the loop run between slices."""
        estimates = self._estimates()
        live = list(self._jobs.values())
        for start in range(0, len(live), PASS_SLICE):
            for admission in live[start : start + PASS_SLICE]:
                estimate = estimates.get(admission.job_id)
                if estimate is not None and (estimate[0] == 0) != (
                    admission.state is JobState.RUNNING
                ):
                    estimate = None  # it started during the pass: its own estimate, not the queue's
                admission._publish(eta_step=self.eta_step, estimate=estimate)
            yield

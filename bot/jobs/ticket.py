"""What a caller hands the scheduler (JobTicket) and what it gets back (Admission, Progress)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.errors import InvalidRequest
from bot.jobs.errors import JobNotStarted
from bot.remix.enums import MAX_NUM_IMAGES as MAX_IMAGES


class AdmissionHost(Protocol):
    """What an admission asks of the scheduler that admitted it (the scheduler is one; this
    module does not import it, so bot/jobs has no import circle)."""

    progress_interval: float
    eta_step: float

    def _now(self) -> float: ...

    def _estimate(self, admission: Admission) -> tuple[int | None, float | None, float | None]: ...

    async def _acquire_slot(self, admission: Admission) -> None: ...

    def _backend_answered(self, admission: Admission) -> None: ...

    def _backend_limited(
        self, admission: Admission, retry_after: float | None, limit: int | None
    ) -> None: ...


JobId = str | int
RunFn = Callable[["Admission"], Awaitable[Any]]


class JobState(enum.StrEnum):
    """Where a job is in the scheduler; it reports only whether a job ran, never how it ended
    (that is the job lifecycle's to decide)."""

    QUEUED = "queued"
    RUNNING = "running"
    RAN = "ran"  # the run was started (whatever it came to)
    NOT_RUN = "not-run"  # cancelled while queued, or handed back at close(); never started

    @property
    def final(self) -> bool:
        """True once the job left the scheduler."""
        return self not in (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True, eq=False, slots=True)
class JobTicket:
    """A job to schedule: who asked, how many images it occupies, and the coroutine to run."""

    job_id: JobId
    user_id: int
    images: int
    run: RunFn

    def __post_init__(self) -> None:
        if isinstance(self.images, bool) or not isinstance(self.images, int):
            raise InvalidRequest(
                f"A job asks for a whole number of images from 1 to {MAX_IMAGES}, "
                f"not {self.images!r}."
            )
        if not 1 <= self.images <= MAX_IMAGES:
            raise InvalidRequest(f"A job asks for 1 to {MAX_IMAGES} images, not {self.images}.")


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of one job: position 0 means running, 1 means next; None once finished."""

    job_id: JobId
    state: JobState
    position: int | None
    wait_seconds: float | None  # until it starts (0 once running)
    eta_seconds: float | None  # until it finishes
    stage: str | None  # free text set by the run, e.g. "uploading"
    version: int  # bumps on every published change


class Admission:
    """The handle of an admitted job: its progress, a way to await changes, and its outcome."""

    # A thousand queued jobs are a thousand of these: no __dict__, and the events are made only
    # when someone waits, so the garbage collector's full passes have less to walk.
    __slots__ = (
        "_changed",
        "_done",
        "_final",
        "_interrupting",
        "_on_change",
        "_published",
        "_published_at",
        "_scheduler",
        "_version",
        "cost",
        "error",
        "finished_at",
        "held",
        "slot_at",
        "slot_held",
        "stage",
        "started_at",
        "state",
        "submitted_at",
        "ticket",
        "value",
    )

    def __init__(self, scheduler: AdmissionHost, ticket: JobTicket, cost: int, now: float) -> None:
        self._scheduler = scheduler
        self.ticket = ticket
        self.cost = cost  # images charged against the in-flight budget (clamped to the budget)
        self.state = JobState.QUEUED
        self.stage: str | None = None
        self.submitted_at = now
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self._version = 0
        # What was last published, or first seen: (state, coarse position, stage, eta).
        self._published: tuple[Any, ...] | None = None
        self._published_at = now
        self._changed: asyncio.Event | None = None  # made by the first wait_changed
        self._done: asyncio.Event | None = None  # made by the first wait_done
        self._final: Progress | None = None
        self._interrupting = False
        # Told of every published change (the scheduler's progress publisher, when watched).
        self._on_change: Callable[[Admission], None] | None = None
        # The backend slot: taken when the job starts, given back when the backend answers.
        self.slot_held = False
        self.slot_at: float | None = None  # when the slot was (last) taken
        self.held = 0  # images it holds against the in-flight budget

    def __repr__(self) -> str:
        return f"<Admission job={self.job_id!r} user={self.user_id} {self.state.value}>"

    @property
    def job_id(self) -> JobId:
        """The job's id, as given in the ticket."""
        return self.ticket.job_id

    @property
    def user_id(self) -> int:
        """Who asked for the job."""
        return self.ticket.user_id

    @property
    def images(self) -> int:
        """How many images the job asked for."""
        return self.ticket.images

    @property
    def done(self) -> bool:
        """True once the job left the scheduler (finished, failed, cancelled, handed back)."""
        return self.state.final

    def progress(self) -> Progress:
        """The job's position and estimates as of now."""
        if self._final is not None:
            return self._final
        position, wait, eta = self._scheduler._estimate(self)
        if self._published is None:  # the first look: what a later change is measured against
            self._published = (self.state, _coarse(position), self.stage, eta)
            self._published_at = self._scheduler._now()
        return Progress(self.job_id, self.state, position, wait, eta, self.stage, self._version)

    @property
    def position(self) -> int | None:
        """0 while running, 1.. while queued (1 = next), None once finished."""
        return self.progress().position

    @property
    def eta_seconds(self) -> float | None:
        """Estimated seconds until the job finishes; None once finished."""
        return self.progress().eta_seconds

    def set_stage(self, stage: str | None) -> None:
        """Let the run announce a step (e.g. "uploading"); watchers see it at once."""
        if self.state.final or stage == self.stage:
            return
        self.stage = stage
        self._publish(force=True)

    async def acquire(self) -> None:
        """Wait for a backend slot (a job starts holding one; after a 429 it waits again)."""
        await self._scheduler._acquire_slot(self)

    def answered(self) -> None:
        """The backend accepted the call: give the slot back before downloading and posting."""
        self._scheduler._backend_answered(self)

    def limited(self, retry_after: float | None = None, limit: int | None = None) -> None:
        """The backend said its in-flight limit was hit: give the slot back, lower the budget."""
        self._scheduler._backend_limited(self, retry_after, limit)

    async def wait_changed(self, timeout: float, since: int | None = None) -> Progress:  # noqa: ASYNC109 (required bound)
        """Wait up to ``timeout`` seconds for a change after version ``since`` (default: now)."""
        if since is None:
            since = self._version
        if self._version == since and self._final is None:
            if self._changed is None:
                self._changed = asyncio.Event()
            event = self._changed
            try:
                async with asyncio.timeout(timeout):
                    await event.wait()
            except TimeoutError:
                pass
        return self.progress()

    async def updates(
        self, min_interval: float | None = None, idle_timeout: float = 30.0
    ) -> AsyncIterator[Progress]:
        """Yield the current progress, then changes, ending with the final one.

        Position/ETA changes are coalesced to at most one per ``min_interval`` seconds (default:
        the scheduler's ``progress_interval``); a change of state (at most two per job) or of the
        stage the run sets is yielded at once. When nothing happens for
        ``idle_timeout`` seconds a fresh snapshot is yielded if its ETA moved by the scheduler's
        ``eta_step`` (so "about 40 s" keeps counting down while one long job runs).
        """
        interval = self._scheduler.progress_interval if min_interval is None else min_interval
        loop = asyncio.get_running_loop()
        last = self.progress()
        last_at = loop.time()
        yield last
        while not last.state.final:
            # Spread over ±20 %: a burst of jobs must not refresh (and edit Discord) in lockstep.
            spread = idle_timeout * (0.8 + 0.4 * (hash(self.job_id) % 1000) / 1000)
            current = await self.wait_changed(spread, since=last.version)
            if current.version == last.version:
                if _eta_moved(last, current, self._scheduler.eta_step):
                    last, last_at = current, loop.time()
                    yield current
                continue
            if _same_phase(last, current):
                remaining = last_at + interval - loop.time()
                while remaining > 0 and _same_phase(last, current):
                    current = await self.wait_changed(remaining, since=current.version)
                    remaining = last_at + interval - loop.time()
            last, last_at = current, loop.time()
            yield current

    async def wait_done(self, timeout: float) -> bool:  # noqa: ASYNC109 (required bound)
        """Wait up to ``timeout`` seconds for the job to leave the scheduler; True if it did."""
        if self.state.final:
            return True
        if self._done is None:
            self._done = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._done.wait()
        except TimeoutError:
            return False
        return True

    async def result(self, timeout: float) -> Any:  # noqa: ASYNC109 (required bound)
        """The run's return value, or its exception re-raised; JobNotStarted if it never ran.

        Raises TimeoutError if the job is not finished within ``timeout`` seconds.
        """
        if not await self.wait_done(timeout):
            raise TimeoutError(f"job {self.job_id!r} did not finish within {timeout:g} s")
        if self.state is JobState.NOT_RUN:
            raise JobNotStarted()
        if self.error is not None:
            raise self.error
        return self.value

    # Scheduler side -------------------------------------------------------------------------

    def _publish(
        self,
        force: bool = False,
        eta_step: float = 0.0,
        estimate: tuple[int | None, float | None, float | None] | None = None,
    ) -> None:
        """Bump the version and wake waiters if the visible progress changed."""
        if self._final is not None:
            return
        position, _, eta = self._scheduler._estimate(self) if estimate is None else estimate
        key = (self.state, _coarse(position), self.stage)
        now = self._scheduler._now()
        if self._published is None and not force:
            # Published for the first time, unseen: version 0 stands for it (a new job is
            # published with the next pass over the queue, not on its own at submit).
            self._published = (*key, eta)
            self._published_at = now
            return
        if not force and self._published is not None:
            old_key, old_eta = self._published[:3], self._published[3]
            if old_key == key:
                if eta is None or old_eta is None:
                    return
                expected = old_eta - (now - self._published_at)
                # Far-off estimates move a little all the time: tell only what a member notices.
                if abs(eta - expected) < max(eta_step, 0.1 * eta):
                    return
        self._published = (*key, eta)
        self._published_at = now
        self._bump()

    def _finish(
        self, state: JobState, now: float, value: Any = None, error: BaseException | None = None
    ) -> None:
        """Record the outcome, publish the final snapshot and wake everyone."""
        self.state = state
        self.finished_at = now
        self.value = value
        self.error = error
        self._version += 1
        self._final = Progress(self.job_id, state, None, None, None, self.stage, self._version)
        self._wake()
        if self._done is not None:
            self._done.set()

    def _bump(self) -> None:
        self._version += 1
        self._wake()

    def _wake(self) -> None:
        event, self._changed = self._changed, None
        if event is not None:
            event.set()
        if self._on_change is not None:
            self._on_change(self)


def _coarse(position: int | None) -> int | None:
    """A queue position as a member notices it: exact near the front, in tens then hundreds
    further back, so a thousand queued jobs are not all woken by every start."""
    if position is None or position <= 10:
        return position
    step = 10 if position <= 100 else 100
    return position // step * step


def _same_phase(a: Progress, b: Progress) -> bool:
    return a.state == b.state and a.stage == b.stage


def _eta_moved(last: Progress, current: Progress, step: float) -> bool:
    return eta_moved(last.eta_seconds, current.eta_seconds, step)


def eta_moved(shown: float | None, current: float | None, step: float) -> bool:
    """True when the ETA a watcher is showing is off by at least ``step`` seconds, or a tenth of
    it for far-off estimates (ten minutes away, half a minute is not news)."""
    if shown is None or current is None:
        return False
    return abs(current - shown) >= max(step, 0.1 * shown)

"""One task publishes the queue's positions and ETAs, for every job, instead of a task per job.

Why: with a thousand jobs queued, a watcher task per job (its coroutine, async generator, events
and timers) was most of the heap the garbage collector walks in its full passes (30 ms and more
of stalled loop each), and every change of the queue (each new job, each start) worked out the
whole queue's estimates and published them to every job at once.

Now the scheduler only marks the queue changed (`poke`). This task then works the estimates out
once and publishes them to every job (the scheduler's `_publish_all`: a job's version moves only
when what its member sees moved). It does so on the next loop turn while the queue is short, and
at most once per `gap` seconds while it is long, so a wave of arrivals costs one pass, not one
each. Watched jobs (`watch`) are shown their progress through their `show` with the rules
`Admission.updates` has: the current progress at once, a change of state or stage at once, a
position or ETA change at most once per `interval` seconds, and after `idle` seconds (±20 %, so a
burst of jobs does not refresh in lockstep) without news a fresh ETA if it moved by `eta_step`
or a tenth. Each job has at most one `show` in flight (a newer progress waits for it and
replaces any older one waiting), and a job's last shown progress is never its final one: the job
lifecycle shows how it ended. The task ends when no job is queued or running; the next change
starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from bot.jobs.ticket import Admission, JobId, JobState, Progress, eta_moved

log = logging.getLogger(__name__)

# At most this many shows in flight at once: a pass that moves a wave of fifty jobs must not
# start fifty Discord edits in one turn of the loop (each costs the loop about a millisecond).
SHOWS_AT_ONCE = 4
# A pass handles this many jobs per turn of the loop: when every ETA moves at once (the first
# measured durations), a thousand jobs at a go would be one long turn.
PASS_SLICE = 200

# Shows one job's progress to its member (a presenter's `progress`).
Show = Callable[[Progress], Awaitable[None]]


class PublisherHost(Protocol):
    """What the publisher asks of its scheduler (bot/jobs/scheduler.py)."""

    def _live(self) -> int: ...

    def _publish_gap(self) -> float: ...

    def _publish_all(self) -> Iterator[None]: ...


class _Watch:
    """What one watched job was last shown, and when."""

    __slots__ = (
        "admission",
        "checked_at",
        "due",
        "eta",
        "queued",
        "sending",
        "show",
        "shown_at",
        "spread",
        "stage",
        "state",
        "version",
        "waiting",
    )

    def __init__(self, admission: Admission, show: Show, spread: float) -> None:
        self.admission = admission
        self.show = show
        self.spread = spread
        self.version = -1  # nothing shown yet
        self.state: JobState | None = None
        self.stage: str | None = None
        self.eta: float | None = None
        self.shown_at = float("-inf")
        self.checked_at = 0.0
        self.due: float | None = None  # a held-back change is shown at this time
        self.waiting: Progress | None = None  # the newest progress not yet handed to `show`
        self.queued = False  # in line for a sender
        self.sending = False  # `show` is being awaited


class ProgressPublisher:
    """The one task that publishes the queue's progress to every job and shows watched jobs'."""

    def __init__(
        self, host: PublisherHost, *, interval: float, idle: float = 30.0, eta_step: float = 5.0
    ) -> None:
        self._host = host
        self.interval = interval
        self.idle = idle
        self.eta_step = eta_step
        self._watches: dict[JobId, _Watch] = {}
        self._ready: deque[_Watch] = deque()  # jobs with a progress to show, in turn
        self._senders: set[asyncio.Task[None]] = set()
        self._active = 0  # senders still taking work (a finished task leaves the set a turn later)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._dirty = False
        self._last_pass = float("-inf")
        self._closed = False
        self._on_change = self._changed  # one bound method for every watched job, not one each

    @property
    def running(self) -> bool:
        """True while the publisher's task runs (a job is queued or running, or one is shown)."""
        return self._task is not None

    @property
    def watched(self) -> int:
        """How many jobs are watched."""
        return len(self._watches)

    def poke(self) -> None:
        """The queue changed: publish to every job soon (at most once per gap while it is long)."""
        self._dirty = True
        self._ensure_running()

    def watch(self, admission: Admission, show: Show) -> None:
        """Show `admission`'s progress through `show` until it leaves the scheduler."""
        if admission.done or self._closed:
            return
        # Spread over ±20 %: a burst of jobs must not refresh (and edit Discord) in lockstep.
        spread = self.idle * (0.8 + 0.4 * (hash(admission.job_id) % 1000) / 1000)
        watch = _Watch(admission, show, spread)
        watch.checked_at = self._now()
        self._watches[admission.job_id] = watch
        admission._on_change = self._on_change
        if admission.state is JobState.RUNNING:  # its progress is known without the queue's
            self._consider(watch, self._now())
        else:  # shown with the next pass, which works out the whole queue once for all arrivals
            self.poke()

    async def close(self) -> None:
        """Stop publishing and showing: cancel the task and any show in flight."""
        self._closed = True
        for watch in self._watches.values():
            watch.admission._on_change = None
        self._watches.clear()
        self._ready.clear()
        tasks = [t for t in (self._task, *self._senders) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._task = None

    # Internals -------------------------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic()  # the event loop's clock

    def _ensure_running(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller, a finaliser): asked on demand
            return
        if self._closed:
            return
        if self._task is not None:
            self._wake.set()
            return
        self._task = loop.create_task(self._run(), name="progress-publisher")

    async def _run(self) -> None:
        try:
            while self._host._live() or self._watches:
                if not self._dirty:
                    await self._sleep(self._next_due())
                self._wake.clear()
                if self._dirty:
                    # Rate-limited passes: a long queue is worked out at most once per gap.
                    wait = self._last_pass + self._host._publish_gap() - self._now()
                    if wait > 0:
                        await asyncio.sleep(wait)
                try:
                    await self._pass()
                except Exception:  # progress is cosmetic: a bug here must not stop the next pass
                    log.exception("publishing the queue's progress failed")
        finally:
            self._task = None

    async def _sleep(self, until: float | None) -> None:
        """Until poked, or until `until` (loop time) when a watched job has something due."""
        timeout = None if until is None else max(until - self._now(), 0.0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _pass(self) -> None:
        now = self._now()
        if self._dirty:
            self._dirty = False
            self._last_pass = now
            # Each moved job's change comes back through _changed; the loop runs between slices.
            for _ in self._host._publish_all():
                await asyncio.sleep(0)
            now = self._now()
        for n, watch in enumerate(list(self._watches.values()), start=1):
            if n % PASS_SLICE == 0:
                await asyncio.sleep(0)
                now = self._now()
            if watch.state is None:  # a new job: shown once its queue's estimates are out
                self._consider(watch, now)
            elif watch.due is not None and now >= watch.due:
                self._consider(watch, now)
            elif watch.due is None and now - watch.checked_at >= watch.spread:
                self._refresh(watch, now)

    def _next_due(self) -> float | None:
        """The earliest time a watched job has a held-back change or an idle refresh due."""
        due = [
            w.due if w.due is not None else w.checked_at + w.spread for w in self._watches.values()
        ]
        return min(due, default=None)

    def _changed(self, admission: Admission) -> None:
        """An admission published a change (or ended)."""
        watch = self._watches.get(admission.job_id)
        if watch is None or watch.admission is not admission:
            return
        if admission.done:  # also from a finaliser outside the loop: nothing more to show
            self._drop(watch)
        else:
            self._consider(watch, self._now())

    def _consider(self, watch: _Watch, now: float) -> None:
        """Show a change now, or hold it until the job's interval has passed."""
        admission = watch.admission
        if admission.done:
            self._drop(watch)
            return
        if admission._version == watch.version:
            watch.due = None
            return
        current = admission.progress()
        if current.state.final:
            self._drop(watch)
            return
        phase = current.state is not watch.state or current.stage != watch.stage
        if phase or now >= watch.shown_at + self.interval:
            self._show(watch, current, now, first=phase and watch.state is not None)
        else:
            watch.due = watch.shown_at + self.interval
            self._wake.set()  # the task's sleep may need to end sooner

    def _refresh(self, watch: _Watch, now: float) -> None:
        """Nothing happened for a while: show a fresh ETA if it moved noticeably."""
        watch.checked_at = now
        current = watch.admission.progress()
        if current.state.final:
            self._drop(watch)
        elif eta_moved(watch.eta, current.eta_seconds, self.eta_step):
            self._show(watch, current, now)

    def _show(self, watch: _Watch, progress: Progress, now: float, *, first: bool = False) -> None:
        """Hand `progress` to the job's `show`, after the one in flight; a start or a stage goes
        ahead of position moves waiting for a sender (`first`)."""
        watch.version, watch.state, watch.stage = progress.version, progress.state, progress.stage
        watch.eta = progress.eta_seconds
        watch.shown_at = watch.checked_at = now
        watch.due = None
        watch.waiting = progress
        if watch.queued and first:  # a start waits behind no position moves
            self._ready.remove(watch)
            self._ready.appendleft(watch)
        elif not watch.queued and not watch.sending:
            watch.queued = True
            if first:
                self._ready.appendleft(watch)
            else:
                self._ready.append(watch)
        while self._ready and self._active < SHOWS_AT_ONCE:
            self._active += 1
            task = asyncio.get_running_loop().create_task(self._send())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def _send(self) -> None:
        """One of the senders: show what is waiting, job after job, until nothing is."""
        try:
            while self._ready:
                watch = self._ready.popleft()
                watch.queued = False
                progress, watch.waiting = watch.waiting, None
                if progress is None or watch.admission.done:
                    continue
                watch.sending = True
                try:
                    await watch.show(progress)
                except Exception:  # progress is cosmetic: never let it hurt the job
                    log.warning(
                        "progress update failed for job %s", watch.admission.job_id, exc_info=True
                    )
                finally:
                    watch.sending = False
                if watch.waiting is not None and not watch.queued:  # it moved while shown
                    watch.queued = True
                    self._ready.append(watch)
        finally:
            self._active -= 1

    def _drop(self, watch: _Watch) -> None:
        if self._watches.get(watch.admission.job_id) is watch:
            del self._watches[watch.admission.job_id]
        watch.admission._on_change = None

"""The scheduler: budget, fairness, caps, holds, cancel, failures, shutdown, load."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest

from bot.errors import InvalidRequest, RemixUnavailable
from bot.jobs import (
    Admission,
    AdmissionRefused,
    JobNotStarted,
    JobRunning,
    JobState,
    JobTicket,
    NotJobOwner,
    QueueFull,
    Scheduler,
    SchedulerClosed,
    UserQueueFull,
)
from bot.settings import load_settings

WAIT = 5.0  # upper bound of every wait in these tests; they finish in milliseconds


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """Stands in for the backend: jobs hold their images until released, and it tracks the peak."""

    def __init__(self) -> None:
        self.inflight = 0
        self.peak = 0
        self.started: list[Any] = []
        self.gates: dict[Any, asyncio.Event] = {}

    def job(
        self,
        job_id: Any,
        user_id: int,
        images: int = 1,
        *,
        hold: bool = True,
        delay: float = 0.0,
        fail: BaseException | None = None,
    ) -> JobTicket:
        gate = self.gates.setdefault(job_id, asyncio.Event())
        if not hold:
            gate.set()

        async def run(admission: Admission) -> str:
            self.inflight += admission.images
            self.peak = max(self.peak, self.inflight)
            self.started.append(job_id)
            try:
                async with asyncio.timeout(WAIT):
                    await gate.wait()
                if delay:
                    await asyncio.sleep(delay)
                if fail is not None:
                    raise fail
                return f"result-{job_id}"
            finally:
                self.inflight -= admission.images

        return JobTicket(job_id, user_id, images, run)

    def release(self, job_id: Any) -> None:
        self.gates[job_id].set()


async def settle() -> None:
    """Let started tasks reach their first await (a bounded number of loop turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def finish(scheduler: Scheduler, backend: Backend, job_id: Any) -> None:
    """Release one running job and wait for the scheduler to settle it."""
    admission = scheduler.get(job_id)
    assert admission is not None and admission.state is JobState.RUNNING
    backend.release(job_id)
    assert await admission.wait_done(WAIT)
    await settle()


def test_ticket_refuses_bad_image_counts_with_one_sentence() -> None:
    async def run(_: Admission) -> None:
        return None

    with pytest.raises(InvalidRequest, match="1 to 8 images, not 9"):
        JobTicket("j", 1, 9, run)
    with pytest.raises(InvalidRequest, match="1 to 8 images, not 0"):
        JobTicket("j", 1, 0, run)
    with pytest.raises(InvalidRequest, match="whole number"):
        JobTicket("j", 1, True, run)  # type: ignore[arg-type]


def test_constructor_validates_and_reads_settings() -> None:
    with pytest.raises(ValueError, match="inflight_images"):
        Scheduler(0)
    s = load_settings(
        {
            "REMIXBOT_INFLIGHT_IMAGES": "7",
            "REMIXBOT_USER_QUEUE_CAP": "2",
            "REMIXBOT_QUEUE_MAX": "9",
        },
        dotenv=None,
    )
    scheduler = Scheduler.from_settings(s)
    assert (scheduler.capacity, scheduler.user_queue_cap, scheduler.queue_max) == (7, 2, 9)


async def test_budget_never_exceeded_with_mixed_sizes_and_all_complete() -> None:
    rng = random.Random(6)
    backend = Backend()
    scheduler = Scheduler(10, user_queue_cap=100, queue_max=1000)
    admissions = []
    for i in range(60):
        images = rng.choice([1, 1, 2, 4, 8])
        ticket = backend.job(i, user_id=i % 7, images=images, hold=False, delay=rng.random() / 200)
        admissions.append(scheduler.submit(ticket))
        assert scheduler.inflight <= 10
    results = await asyncio.gather(*(a.result(WAIT) for a in admissions))
    assert results == [f"result-{i}" for i in range(60)]
    assert 8 <= backend.peak <= 10
    assert scheduler.inflight == 0 and backend.inflight == 0
    assert scheduler.stats().running == 0 and scheduler.stats().queued == 0


async def test_eight_image_job_is_not_starved_by_a_stream_of_one_image_jobs() -> None:
    backend = Backend()
    scheduler = Scheduler(10, user_queue_cap=5, queue_max=100)
    for i in range(9):
        scheduler.submit(backend.job(f"small-{i}", user_id=100 + i))
    await settle()
    assert scheduler.inflight == 9
    big = scheduler.submit(backend.job("big", user_id=1, images=8))
    assert big.state is JobState.QUEUED and big.position == 1
    # Small jobs keep arriving; one budget slot is free but none may overtake the big job.
    later = [scheduler.submit(backend.job(f"late-{i}", user_id=200 + i)) for i in range(5)]
    await settle()
    assert all(a.state is JobState.QUEUED for a in later)
    assert scheduler.inflight == 9
    for i in range(7):  # after 7 of the 9 running small jobs end, 8 images are free
        await finish(scheduler, backend, f"small-{i}")
        assert big.state is (JobState.RUNNING if i == 6 else JobState.QUEUED)
        assert backend.peak <= 10
    # The big job started before every job submitted after it.
    assert backend.started[9] == "big"
    assert scheduler.inflight == 10  # 2 small + 8 big
    for job_id in ["small-7", "small-8", "big"]:
        await finish(scheduler, backend, job_id)
    await settle()
    for i in range(5):
        if scheduler.get(f"late-{i}") is not None:
            await finish(scheduler, backend, f"late-{i}")
    assert backend.peak <= 10
    assert scheduler.inflight == 0 and not scheduler.queued()
    assert all(a.state is JobState.RAN for a in [big, *later])


async def test_job_larger_than_budget_is_clamped_and_runs_alone() -> None:
    backend = Backend()
    scheduler = Scheduler(4)
    small = scheduler.submit(backend.job("s", user_id=1, images=1))
    big = scheduler.submit(backend.job("b", user_id=2, images=8))
    after = scheduler.submit(backend.job("t", user_id=3, images=1))
    await settle()
    assert big.cost == 4 and big.state is JobState.QUEUED and after.state is JobState.QUEUED
    await finish(scheduler, backend, "s")
    assert big.state is JobState.RUNNING and after.state is JobState.QUEUED
    assert scheduler.inflight == 4
    await finish(scheduler, backend, "b")
    await finish(scheduler, backend, "t")
    assert small.state is big.state is after.state is JobState.RAN


async def test_round_robin_across_users_fifo_within_a_user() -> None:
    backend = Backend()
    scheduler = Scheduler(1, user_queue_cap=5)
    scheduler.submit(backend.job("blocker", user_id=9))
    for job_id, user in [("a1", 1), ("a2", 1), ("a3", 1), ("b1", 2), ("c1", 3), ("b2", 2)]:
        scheduler.submit(backend.job(job_id, user_id=user))
    assert [a.job_id for a in scheduler.queued()] == ["a1", "b1", "c1", "a2", "b2", "a3"]
    assert [a.position for a in scheduler.queued()] == [1, 2, 3, 4, 5, 6]
    assert [a.job_id for a in scheduler.queued(user_id=1)] == ["a1", "a2", "a3"]
    for job_id in ["blocker", "a1", "b1", "c1", "a2", "b2", "a3"]:
        await finish(scheduler, backend, job_id)
    assert backend.started == ["blocker", "a1", "b1", "c1", "a2", "b2", "a3"]


async def test_user_cap_and_global_bound_refuse_with_their_sentences() -> None:
    backend = Backend()
    scheduler = Scheduler(1, user_queue_cap=3, queue_max=5)
    scheduler.submit(backend.job("run", user_id=1))  # runs: not counted as waiting
    for i in range(3):
        scheduler.submit(backend.job(f"u1-{i}", user_id=1))
    with pytest.raises(UserQueueFull) as caught:
        scheduler.submit(backend.job("u1-3", user_id=1))
    assert str(caught.value) == "You already have 3 remixes waiting; wait for one to finish."
    assert scheduler.get("u1-3") is None and len(scheduler.queued()) == 3
    with pytest.raises(UserQueueFull):
        scheduler.check_admission(1)
    scheduler.submit(backend.job("u2-0", user_id=2))
    scheduler.submit(backend.job("u3-0", user_id=3))
    with pytest.raises(QueueFull) as full:
        scheduler.submit(backend.job("u4-0", user_id=4))
    assert str(full.value) == "The remix queue is full; try again in a minute."
    assert isinstance(full.value, AdmissionRefused)
    with pytest.raises(QueueFull):
        scheduler.check_admission(4)
    assert len(scheduler.queued()) == 5
    # Cancelling one frees the place.
    assert scheduler.cancel("u2-0", user_id=2)
    scheduler.check_admission(4).release()
    assert str(UserQueueFull(1)) == "You already have 1 remix waiting; wait for one to finish."
    backend.release("run")
    drained = await scheduler.drain(WAIT)
    assert [t.job_id for t in drained.returned] == ["u1-0", "u3-0", "u1-1", "u1-2"]
    assert drained.interrupted == []


async def test_held_submit_is_not_refused_by_a_race_and_holds_lapse() -> None:
    clock = Clock()
    backend = Backend()
    scheduler = Scheduler(1, user_queue_cap=2, queue_max=2, clock=clock, hold_ttl=60)
    scheduler.submit(backend.job("run", user_id=9))
    hold = scheduler.check_admission(1)  # the cog now reserves quota (awaits) ...
    scheduler.submit(backend.job("other", user_id=2))  # ... while another member takes a place
    with pytest.raises(QueueFull):  # the held place counts: the queue is full for newcomers
        scheduler.submit(backend.job("third", user_id=3))
    admission = scheduler.submit(backend.job("mine", user_id=1), hold=hold)
    assert admission.state is JobState.QUEUED and not hold.active
    assert scheduler.stats().held == 0
    # A forgotten hold lapses after hold_ttl and stops counting.
    scheduler.cancel("other")
    forgotten = scheduler.check_admission(5)
    with pytest.raises(QueueFull):
        scheduler.check_admission(6)
    clock.now += 61
    assert not forgotten.active
    scheduler.check_admission(6).release()
    # A lapsed hold gives no guarantee: submit checks the caps again (clean refusal, nothing queued).
    scheduler.submit(backend.job("fill", user_id=7))
    with pytest.raises(QueueFull):
        scheduler.submit(backend.job("late", user_id=5), hold=forgotten)
    # Holds are released by a with-block too.
    scheduler.cancel("fill")
    with scheduler.check_admission(8) as h:
        assert scheduler.stats().held == 1
    assert not h.active and scheduler.stats().held == 0
    # After close a held submit is refused with SchedulerClosed; the caller refunds.
    hold = scheduler.check_admission(8)
    scheduler.close()
    with pytest.raises(SchedulerClosed):
        scheduler.submit(backend.job("closed", user_id=8), hold=hold)
    with pytest.raises(SchedulerClosed):
        scheduler.check_admission(8)
    backend.release("run")
    assert (await scheduler.drain(WAIT)).interrupted == []


async def test_cancel_queued_job_frees_its_place_and_never_runs_it() -> None:
    backend = Backend()
    scheduler = Scheduler(1, user_queue_cap=3)
    scheduler.submit(backend.job("run", user_id=1))
    a = scheduler.submit(backend.job("a", user_id=2))
    b = scheduler.submit(backend.job("b", user_id=3))
    assert (a.position, b.position) == (1, 2)
    with pytest.raises(NotJobOwner, match="Only the member who asked"):
        scheduler.cancel("a", user_id=3)
    assert scheduler.cancel("a", user_id=2) is True
    assert a.state is JobState.NOT_RUN and a.position is None
    assert b.position == 1
    with pytest.raises(JobNotStarted, match="nothing was charged"):
        await a.result(WAIT)
    with pytest.raises(JobRunning, match="cannot be cancelled"):
        scheduler.cancel("run", user_id=1)
    assert scheduler.cancel("a") is False  # already cancelled
    assert scheduler.cancel("nope") is False
    await finish(scheduler, backend, "run")
    await finish(scheduler, backend, "b")
    assert backend.started == ["run", "b"]
    assert scheduler.cancel("b") is False  # finished


async def test_positions_decrease_to_zero_and_updates_report_them() -> None:
    backend = Backend()
    scheduler = Scheduler(1, progress_interval=0.0)
    ids = [f"j{i}" for i in range(5)]
    admissions = [scheduler.submit(backend.job(job_id, user_id=i)) for i, job_id in enumerate(ids)]
    last = admissions[-1]
    seen: list[int | None] = []

    async def watch() -> None:
        async for p in last.updates(min_interval=0.0, idle_timeout=WAIT):
            seen.append(p.position)

    watcher = asyncio.create_task(watch())
    await settle()
    positions = [a.position for a in admissions]
    assert positions == [0, 1, 2, 3, 4]
    for job_id in ids:
        await finish(scheduler, backend, job_id)
    await asyncio.wait_for(watcher, WAIT)
    assert seen == [4, 3, 2, 1, 0, None]
    assert last.state is JobState.RAN and await last.result(WAIT) == "result-j4"


async def test_eta_uses_the_prior_then_measured_durations() -> None:
    clock = Clock()
    backend = Backend()
    scheduler = Scheduler(1, clock=clock, prior_job_seconds=15.0)
    jobs = [scheduler.submit(backend.job(f"j{i}", user_id=i)) for i in range(8)]
    await settle()
    etas = [j.eta_seconds for j in jobs[:4]]
    assert etas == pytest.approx([15.0, 30.0, 45.0, 60.0])
    assert jobs[1].progress().wait_seconds == pytest.approx(15.0)
    clock.now += 5  # the running job is 5 s in
    assert jobs[0].eta_seconds == pytest.approx(10.0)
    assert jobs[3].eta_seconds == pytest.approx(55.0)
    for i in range(4):  # jobs actually take 4 s each
        clock.now += 4 if i else 0
        await finish(scheduler, backend, f"j{i}")
    assert 4.0 < scheduler.job_seconds < 10.0
    position_one = jobs[5]
    assert position_one.position == 1
    expected = 2 * scheduler.job_seconds  # the running job's remainder plus its own run
    assert position_one.eta_seconds == pytest.approx(expected)
    await scheduler.drain(0.01)


async def test_exception_in_a_run_frees_the_budget_and_keeps_the_scheduler_going() -> None:
    backend = Backend()
    scheduler = Scheduler(2)
    boom = scheduler.submit(backend.job("boom", user_id=1, images=2, fail=ValueError("bad")))
    down = scheduler.submit(
        backend.job("down", user_id=2, images=2, fail=RemixUnavailable("The backend is down."))
    )
    ok = scheduler.submit(backend.job("ok", user_id=3, images=2, hold=False))
    await finish(scheduler, backend, "boom")
    with pytest.raises(ValueError, match="bad"):
        await boom.result(WAIT)
    assert boom.state is JobState.RAN
    await finish(scheduler, backend, "down")
    with pytest.raises(RemixUnavailable):
        await down.result(WAIT)
    assert await ok.result(WAIT) == "result-ok"
    assert scheduler.inflight == 0 and backend.inflight == 0


async def test_run_timeout_stops_a_hung_run_and_frees_the_budget() -> None:
    backend = Backend()
    scheduler = Scheduler(1, run_timeout=0.05)
    hung = scheduler.submit(backend.job("hung", user_id=1))  # never released
    nxt = scheduler.submit(backend.job("next", user_id=2, hold=False))
    with pytest.raises(TimeoutError):  # the run is cut off; it ran, and closes its own books
        await hung.result(WAIT)
    assert await nxt.result(WAIT) == "result-next"
    assert scheduler.inflight == 0


async def test_close_hands_back_queued_and_drain_waits_for_running() -> None:
    backend = Backend()
    scheduler = Scheduler(1, user_queue_cap=3)
    running = scheduler.submit(backend.job("run", user_id=1))
    q = [scheduler.submit(backend.job(f"q{i}", user_id=2 + i % 2)) for i in range(3)]
    await settle()
    returned = scheduler.close()
    assert [t.job_id for t in returned] == ["q0", "q1", "q2"]
    assert all(a.state is JobState.NOT_RUN for a in q)
    with pytest.raises(JobNotStarted):
        await q[0].result(WAIT)
    with pytest.raises(SchedulerClosed):
        scheduler.submit(backend.job("new", user_id=5))
    assert scheduler.close() == []
    drain = asyncio.create_task(scheduler.drain(WAIT))
    await settle()
    assert not drain.done()  # still waiting for the running job
    backend.release("run")
    result = await asyncio.wait_for(drain, WAIT)
    assert result.returned == [] and result.interrupted == []
    assert await running.result(WAIT) == "result-run"
    assert backend.started == ["run"]


async def test_drain_timeout_interrupts_running_jobs_and_frees_the_budget() -> None:
    backend = Backend()
    scheduler = Scheduler(2)
    stuck = scheduler.submit(backend.job("stuck", user_id=1))
    quick = scheduler.submit(backend.job("quick", user_id=2, hold=False))
    queued = scheduler.submit(backend.job("queued", user_id=3, images=2))
    await settle()
    result = await scheduler.drain(0.05)
    assert [t.job_id for t in result.returned] == ["queued"]
    assert [t.job_id for t in result.interrupted] == ["stuck"]
    assert stuck.state is JobState.RAN and queued.state is JobState.NOT_RUN
    with pytest.raises(asyncio.CancelledError):  # cut off by the drain; it ran
        await stuck.result(WAIT)
    assert await quick.result(WAIT) == "result-quick"
    assert scheduler.inflight == 0 and backend.inflight == 0


async def test_twenty_jobs_from_ten_users_all_complete_under_the_cap() -> None:
    rng = random.Random(20)
    backend = Backend()
    scheduler = Scheduler(10, user_queue_cap=3, queue_max=50)
    admissions = []
    for i in range(20):
        images = rng.randint(1, 4)
        hold = scheduler.check_admission(i % 10)
        ticket = backend.job(i, user_id=i % 10, images=images, hold=False, delay=0.002)
        admissions.append(scheduler.submit(ticket, hold=hold))
    results = await asyncio.gather(*(a.result(WAIT) for a in admissions))
    assert results == [f"result-{i}" for i in range(20)]
    assert backend.peak <= 10 and scheduler.inflight == 0
    assert sorted(backend.started) == list(range(20))


async def test_updates_throttle_position_changes_but_not_phase_changes() -> None:
    loop = asyncio.get_running_loop()
    backend = Backend()
    interval = 0.2
    scheduler = Scheduler(1, progress_interval=interval, clock=loop.time)
    for i in range(4):
        scheduler.submit(backend.job(f"ahead{i}", user_id=i))
    mine = scheduler.submit(backend.job("mine", user_id=99))
    seen: list[tuple[float, str, int | None, str | None]] = []

    async def watch() -> None:
        async for p in mine.updates(idle_timeout=WAIT):
            seen.append((loop.time(), p.state.value, p.position, p.stage))

    watcher = asyncio.create_task(watch())
    await settle()
    for i in range(4):  # four position changes in quick succession
        await finish(scheduler, backend, f"ahead{i}")
    await asyncio.sleep(interval * 1.5)
    mine.set_stage("uploading")
    await settle()
    backend.release("mine")
    await asyncio.wait_for(watcher, WAIT)
    states = [(s, pos, stage) for _, s, pos, stage in seen]
    assert states[0] == ("queued", 4, None)
    assert states[-3:] == [
        ("running", 0, None),
        ("running", 0, "uploading"),
        ("ran", None, "uploading"),
    ]
    # Position updates: at most one per interval (the rapid changes are coalesced) ...
    queued_times = [t for t, s, _, _ in seen if s == "queued"]
    assert all(b - a >= interval * 0.95 for a, b in itertools.pairwise(queued_times))
    assert mine.started_at is not None
    assert len(queued_times) <= 1 + (mine.started_at - queued_times[0]) / interval
    # ... while the phase change is reported at once, not held back by the throttle.
    running_at = next(t for t, s, _, _ in seen if s == "running")
    assert running_at - mine.started_at < interval / 2


async def test_wait_changed_returns_on_change_or_after_its_timeout() -> None:
    backend = Backend()
    scheduler = Scheduler(1)
    scheduler.submit(backend.job("a", user_id=1))
    b = scheduler.submit(backend.job("b", user_id=2))
    before = b.progress()
    same = await b.wait_changed(0.01)
    assert same.version == before.version and same.position == 1
    waiter = asyncio.create_task(b.wait_changed(WAIT, since=before.version))
    await settle()
    backend.release("a")
    changed = await asyncio.wait_for(waiter, WAIT)
    assert changed.version > before.version and changed.position == 0
    await finish(scheduler, backend, "b")


async def test_duplicate_job_ids_and_foreign_holds_are_refused() -> None:
    backend = Backend()
    scheduler = Scheduler(2)
    other = Scheduler(2)
    scheduler.submit(backend.job("x", user_id=1))
    with pytest.raises(ValueError, match="already queued or running"):
        scheduler.submit(backend.job("x", user_id=1))
    with pytest.raises(ValueError, match="another scheduler"):
        scheduler.submit(backend.job("y", user_id=1), hold=other.check_admission(1))
    with pytest.raises(ValueError, match="another user"):
        scheduler.submit(backend.job("y", user_id=1), hold=scheduler.check_admission(2))
    await finish(scheduler, backend, "x")


async def test_pause_holds_back_new_starts_and_resumes_by_itself() -> None:
    backend = Backend()
    scheduler = Scheduler(2)
    first = scheduler.submit(backend.job("first", user_id=1))
    scheduler.pause(0.05)  # e.g. the backend answered 429 inflight_limit with Retry-After
    scheduler.pause(0.01)  # a shorter pause does not cut the longer one short
    assert scheduler.paused and scheduler.stats().paused
    waiting = scheduler.submit(backend.job("waiting", user_id=2, hold=False))
    await settle()
    assert first.state is JobState.RUNNING and waiting.state is JobState.QUEUED
    assert 0.0 < waiting.progress().wait_seconds <= 0.05  # the pause's remainder, not a slot
    assert await waiting.result(WAIT) == "result-waiting"
    assert not scheduler.paused
    await finish(scheduler, backend, "first")
    s = load_settings({"REMIXBOT_TASK_MAX_WAIT": "1800"}, dotenv=None)
    assert Scheduler.from_settings(s).run_timeout == 2100.0


async def test_waits_on_an_unfinished_job_are_bounded() -> None:
    backend = Backend()
    scheduler = Scheduler(1)
    admission = scheduler.submit(backend.job("slow", user_id=1))
    assert await admission.wait_done(0.01) is False
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.01 s"):
        await admission.result(0.01)
    await finish(scheduler, backend, "slow")
    assert await admission.wait_done(0.01) is True

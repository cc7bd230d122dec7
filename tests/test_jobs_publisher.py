"""The one progress publisher: every watched job is shown its progress by a single task (no task
per job), with the throttle of `Admission.updates`; it ends when the queue empties."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from bot.jobs import Admission, JobState, JobTicket, Progress, Scheduler
from bot.jobs.publisher import PASS_SLICE, SHOWS_AT_ONCE
from bot.jobs.scheduler import PUBLISH_AT_ONCE

WAIT = 5.0  # upper bound of every wait in these tests; they finish in milliseconds


class Jobs:
    """Jobs that hold their place at the backend until released."""

    def __init__(self) -> None:
        self.gates: dict[Any, asyncio.Event] = {}

    def ticket(self, job_id: Any, user_id: int) -> JobTicket:
        gate = self.gates.setdefault(job_id, asyncio.Event())

        async def run(admission: Admission) -> str:
            async with asyncio.timeout(WAIT):
                await gate.wait()
            return f"result-{job_id}"

        return JobTicket(job_id, user_id, 1, run)

    def release(self, job_id: Any) -> None:
        self.gates[job_id].set()


class Shown:
    """What each watched job was shown, in order."""

    def __init__(self) -> None:
        self.seen: dict[Any, list[Progress]] = {}

    def show_for(self, job_id: Any) -> Any:
        async def show(progress: Progress) -> None:
            self.seen.setdefault(job_id, []).append(progress)

        return show

    def positions(self, job_id: Any) -> list[int | None]:
        return [p.position for p in self.seen.get(job_id, [])]


async def until(check: Any, what: str) -> None:
    """Let the loop run until `check()` holds (at most about WAIT seconds)."""
    for _ in range(int(WAIT / 0.001)):
        if check():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


def progress_tasks() -> list[asyncio.Task[Any]]:
    """The tasks showing progress: the publisher's and its senders."""
    return [
        t
        for t in asyncio.all_tasks()
        if t.get_name() == "progress-publisher" or "ProgressPublisher" in repr(t.get_coro())
    ]


async def test_one_task_shows_every_queued_job_its_position_and_ends_when_the_queue_empties() -> (
    None
):
    jobs, shown = Jobs(), Shown()
    scheduler = Scheduler(1, user_queue_cap=100, queue_max=1000, progress_interval=0.0)
    ids = [f"j{n}" for n in range(30)]
    for n, job_id in enumerate(ids):
        scheduler.watch(scheduler.submit(jobs.ticket(job_id, n)), shown.show_for(job_id))
    await until(lambda: all(shown.seen.get(j) for j in ids), "every job shown once")
    assert [shown.positions(j)[0] for j in ids] == list(range(30))  # 0: running, 1: next ...
    # No task per job: one publisher and at most SHOWS_AT_ONCE senders show all thirty.
    assert len(progress_tasks()) <= 1 + SHOWS_AT_ONCE
    assert scheduler.publishing
    jobs.release("j0")
    await until(lambda: shown.positions("j1")[-1:] == [0], "the next job told it started")
    await until(lambda: shown.positions("j5")[-1:] == [4], "a queued job told its new place")
    for job_id in ids[1:]:
        jobs.release(job_id)
    await until(lambda: not scheduler.publishing, "the publisher ends with the queue")
    assert scheduler.queued() == [] and scheduler.running() == []
    # Each job saw its place only shrink, to 0 (running), and never its final progress: how a
    # job ended is the lifecycle's to show.
    for job_id in ids:
        seen = shown.positions(job_id)
        assert seen == sorted(seen, reverse=True) and seen[-1] == 0
    assert all(p.state is not JobState.RAN for seen in shown.seen.values() for p in seen)
    # A later job starts the publisher again.
    later = scheduler.submit(jobs.ticket("later", 99))
    scheduler.watch(later, shown.show_for("later"))
    assert scheduler.publishing
    jobs.release("later")
    assert await later.result(WAIT) == "result-later"
    await until(lambda: not scheduler.publishing, "and ends again")


async def test_a_start_is_shown_at_once_while_position_moves_wait_for_the_interval() -> None:
    jobs, shown = Jobs(), Shown()
    scheduler = Scheduler(1, user_queue_cap=100, progress_interval=WAIT * 2)
    for n in range(3):
        scheduler.submit(jobs.ticket(f"ahead{n}", n))
    mine = scheduler.submit(jobs.ticket("mine", 9))
    scheduler.watch(mine, shown.show_for("mine"))
    await until(lambda: shown.positions("mine") == [3], "the first position")
    jobs.release("ahead0")
    jobs.release("ahead1")
    await until(lambda: scheduler.get("ahead1") is None, "two jobs ahead finished")
    await asyncio.sleep(0.05)
    assert shown.positions("mine") == [3]  # 2, then 1: held back by the interval
    jobs.release("ahead2")
    await until(lambda: mine.state is JobState.RUNNING, "mine started")
    await until(lambda: shown.positions("mine") == [3, 0], "the start, told at once")
    mine.set_stage("uploading")
    await until(lambda: [p.stage for p in shown.seen["mine"]][-1] == "uploading", "the stage")
    jobs.release("mine")
    await until(lambda: not scheduler.publishing, "the queue empty")


async def test_one_show_at_a_time_per_job_the_newest_waiting_and_a_bounded_number_at_once() -> None:
    jobs = Jobs()
    scheduler = Scheduler(1, user_queue_cap=100, queue_max=1000, progress_interval=0.0)
    release = asyncio.Event()
    in_flight: dict[Any, int] = {}
    most: list[int] = [0]
    seen: dict[Any, list[int | None]] = {}

    def show_for(job_id: Any) -> Any:
        async def show(progress: Progress) -> None:
            in_flight[job_id] = in_flight.get(job_id, 0) + 1
            assert in_flight[job_id] == 1, "two shows of one job at once"
            most[0] = max(most[0], sum(in_flight.values()))
            try:
                async with asyncio.timeout(WAIT):
                    await release.wait()
                seen.setdefault(job_id, []).append(progress.position)
            finally:
                in_flight[job_id] -= 1

        return show

    ids = [f"j{n}" for n in range(12)]
    for n, job_id in enumerate(ids):
        scheduler.watch(scheduler.submit(jobs.ticket(job_id, n)), show_for(job_id))
    await until(lambda: sum(in_flight.values()) == SHOWS_AT_ONCE, "the senders busy")
    for job_id in ids[:3]:  # three starts and ends while the shows hang: every place moves twice
        jobs.release(job_id)
        await until(lambda j=job_id: scheduler.get(j) is None, "a job finished")
    release.set()
    await until(lambda: all(seen.get(j) for j in ids[3:]), "every waiting job shown")
    assert most[0] == SHOWS_AT_ONCE
    # A job whose first show was still waiting when its place moved is shown only the newest.
    assert seen["j11"] == [8]
    for job_id in ids[3:]:
        jobs.release(job_id)
    await until(lambda: not scheduler.publishing, "the queue empty")


async def test_a_failing_show_is_logged_and_the_job_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs, shown = Jobs(), Shown()
    scheduler = Scheduler(1, progress_interval=0.0)

    async def broken(progress: Progress) -> None:
        raise RuntimeError("Discord said no")

    first = scheduler.submit(jobs.ticket("broken", 1))
    scheduler.watch(first, broken)
    other = scheduler.submit(jobs.ticket("other", 2))
    scheduler.watch(other, shown.show_for("other"))
    await until(lambda: shown.positions("other") == [1], "the other job shown")
    jobs.release("broken")
    assert await first.result(WAIT) == "result-broken"
    await until(lambda: shown.positions("other") == [1, 0], "and told it started")
    assert "progress update failed for job broken" in caplog.text
    jobs.release("other")
    await until(lambda: not scheduler.publishing, "the queue empty")


async def test_a_wave_into_a_long_queue_is_worked_out_once_not_once_per_arrival() -> None:
    """Past PUBLISH_AT_ONCE jobs a pass is rate-limited: fifty arrivals, each a loop turn apart,
    cost a couple of passes over the queue, not fifty."""

    class Counting(Scheduler):
        passes = 0

        def _publish_all(self) -> Iterator[None]:
            Counting.passes += 1
            return super()._publish_all()

    jobs, shown = Jobs(), Shown()
    scheduler = Counting(1, user_queue_cap=10, queue_max=1000)
    for n in range(PUBLISH_AT_ONCE + 20):
        scheduler.watch(scheduler.submit(jobs.ticket(n, n)), shown.show_for(n))
    await until(lambda: len(shown.seen) == PUBLISH_AT_ONCE + 20, "the long queue shown")
    Counting.passes = 0
    wave = range(1000, 1050)
    for n in wave:
        scheduler.watch(scheduler.submit(jobs.ticket(n, n)), shown.show_for(n))
        await asyncio.sleep(0)  # a loop turn between arrivals, as from the gateway
    await until(lambda: all(shown.seen.get(n) for n in wave), "the wave shown")
    assert shown.positions(1049) == [PUBLISH_AT_ONCE + 20 + 49]
    assert Counting.passes <= 3
    await scheduler.stop_watching()
    scheduler.close()
    for gate in jobs.gates.values():
        gate.set()
    await scheduler.drain(WAIT)


async def test_stop_watching_cancels_the_shows_in_flight_and_shows_nothing_more() -> None:
    jobs = Jobs()
    scheduler = Scheduler(1, progress_interval=0.0)
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def hang(progress: Progress) -> None:
        started.set()
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    admission = scheduler.submit(jobs.ticket("a", 1))
    scheduler.watch(admission, hang)
    async with asyncio.timeout(WAIT):
        await started.wait()
    await scheduler.stop_watching()
    assert cancelled == [True] and progress_tasks() == []
    shown = Shown()
    scheduler.watch(scheduler.submit(jobs.ticket("b", 2)), shown.show_for("b"))
    await asyncio.sleep(0.01)
    assert shown.seen == {}
    jobs.release("a")
    jobs.release("b")
    await scheduler.drain(WAIT)


async def test_a_pass_over_a_long_queue_is_published_a_slice_at_a_time() -> None:
    """When every job's ETA moves at once, the pass publishes PASS_SLICE jobs per turn of the
    loop (the publisher awaits between slices), and every job in the end."""

    class Clock:
        now = 1000.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    jobs = Jobs()
    scheduler = Scheduler(1, queue_max=2000, clock=clock, prior_job_seconds=0.01)
    count = PASS_SLICE * 2 + 50
    admissions = [scheduler.submit(jobs.ticket(n, n)) for n in range(count)]
    queued = admissions[1:]
    seen = [a.progress().version for a in queued]  # what each member was first shown
    scheduler.pause(300.0)  # every queued job now starts five minutes later
    clock.now += 1.0

    def moved() -> int:
        return sum(a.progress().version > v for a, v in zip(queued, seen, strict=True))

    slices = scheduler._publish_all()
    next(slices)
    assert 0 < moved() <= PASS_SLICE
    assert len(list(slices)) == 2  # the other two slices
    assert moved() == len(queued)
    scheduler.close()
    jobs.release(0)
    await scheduler.drain(WAIT)

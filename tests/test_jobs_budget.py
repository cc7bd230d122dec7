"""At the backend's limit: admission by estimated wait, a budget that learns from in-flight 429s,
and a slot given back as soon as the backend answers."""

from __future__ import annotations

import asyncio

import pytest

from bot.jobs import Admission, JobTicket, QueueFull, QueueTooLong, Scheduler
from bot.jobs.budget import InflightBudget
from tests.test_jobs_scheduler import WAIT, Clock, settle


def test_budget_halves_or_takes_the_backends_word_and_climbs_back() -> None:
    budget = InflightBudget(10)
    assert budget.limited(sent_at=1.0, now=2.0) and budget.value == 5
    # Calls already at the backend when it went down are the same congestion: no second cut.
    assert not budget.limited(sent_at=1.5, now=2.1) and budget.value == 5
    assert budget.limited(sent_at=3.0, now=3.0, limit=3) and budget.value == 3
    assert budget.streak == 3 and budget.slowdown() == 1.0
    budget.accepted()
    assert budget.streak == 0 and budget.slowdown() == 0
    # The backend said 3: the budget stays there, and probes a 4th image only rarely.
    for _ in range(3 * 20 - 2):
        budget.accepted()
    assert budget.value == 3
    budget.accepted()
    assert budget.value == 4
    for _ in range(10_000):
        budget.accepted()
    assert budget.value == 10  # never above the configured maximum


def test_without_a_stated_limit_it_settles_just_under_where_the_429_came() -> None:
    """A backend allowing 6 that says nothing: halved to 3 at 7, back to 6 quickly, then it
    stays at 6 (no sawtooth down to 3 and up to 7 again)."""
    budget = InflightBudget(7)
    assert budget.limited(sent_at=1.0, now=1.0) and budget.value == 3
    for _ in range(3 + 4 + 5):
        budget.accepted()
    assert budget.value == 6
    for _ in range(6 * 20 - 1):
        budget.accepted()
    assert budget.value == 6  # the probe of a 7th image waits for many accepted calls


def _job(job_id: str, user: int, gate: asyncio.Event, log: list[str], images: int = 1) -> JobTicket:
    async def run(admission: Admission) -> None:
        log.append(f"sent {job_id}")
        async with asyncio.timeout(WAIT):
            await gate.wait()
        admission.answered()  # the backend answered: downloads and posting come next
        log.append(f"answered {job_id}")
        async with asyncio.timeout(WAIT):
            await asyncio.sleep(0.05)  # "downloading": the slot is already free

    return JobTicket(job_id, user, images, run)


async def test_the_slot_is_free_while_a_result_downloads() -> None:
    scheduler = Scheduler(1)
    gates = {n: asyncio.Event() for n in "ab"}
    log: list[str] = []
    a = scheduler.submit(_job("a", 1, gates["a"], log))
    scheduler.submit(_job("b", 2, gates["b"], log))
    await settle()
    assert log == ["sent a"] and scheduler.inflight == 1
    gates["a"].set()
    await settle()
    # b was sent while a was still downloading.
    assert log == ["sent a", "answered a", "sent b"] and not a.done
    gates["b"].set()
    assert await a.wait_done(WAIT)
    assert await scheduler.get("b").wait_done(WAIT) if scheduler.get("b") else True


async def test_a_429_gives_the_slot_back_lowers_the_budget_and_retries_first() -> None:
    scheduler = Scheduler(4)
    log: list[str] = []
    tries = {"x": 0}

    async def run(admission: Admission) -> str:
        for _ in range(5):
            await admission.acquire()
            tries["x"] += 1
            if tries["x"] == 1:
                admission.limited(limit=2)  # "max_inflight_requests": 2
                log.append(f"429 at budget {scheduler.budget.value}")
                continue
            admission.answered()
            return "ok"
        raise AssertionError("not retried")

    job = scheduler.submit(JobTicket("x", 1, 1, run))
    assert await job.result(WAIT) == "ok"
    assert log == ["429 at budget 2"] and tries["x"] == 2 and scheduler.inflight == 0


async def test_admission_by_estimated_wait() -> None:
    clock = Clock()
    scheduler = Scheduler(
        2, user_queue_cap=100, queue_max=1000, max_wait=60.0, clock=clock, prior_job_seconds=10.0
    )
    gate = asyncio.Event()
    log: list[str] = []
    # 2 in flight, then each pair of queued jobs waits another 10 s: a new job starts after
    # (1 + queued // 2) * 10 s.
    jobs = [scheduler.submit(_job(f"j{n}", n, gate, log)) for n in range(12)]
    await settle()
    assert scheduler.estimated_wait() == pytest.approx(60.0)
    scheduler.refuse_if_full(user_id=99)  # exactly at the limit: accepted
    jobs += [scheduler.submit(_job(f"j{n}", n, gate, log)) for n in (12, 13)]
    assert scheduler.estimated_wait() == pytest.approx(70.0)
    with pytest.raises(QueueTooLong, match="About 1 minute of remixes are waiting"):
        scheduler.refuse_if_full(user_id=99)
    gate.set()
    for job in jobs:
        assert await job.wait_done(WAIT)


async def test_the_memory_bound_stays_as_a_safety_net() -> None:
    scheduler = Scheduler(1, user_queue_cap=10, queue_max=3, max_wait=None)
    gate = asyncio.Event()
    log: list[str] = []
    jobs = [scheduler.submit(_job(f"j{n}", n, gate, log)) for n in range(4)]  # 1 runs, 3 wait
    with pytest.raises(QueueFull):
        scheduler.refuse_if_full(user_id=50)
    gate.set()
    for job in jobs:
        assert await job.wait_done(WAIT)


async def test_a_start_wakes_the_front_of_a_long_queue_not_all_of_it() -> None:
    """Positions far back are told in tens (and ETAs when they move by a tenth), so a thousand
    queued jobs are not all woken, and their messages all edited, by every start."""
    clock = Clock()
    scheduler = Scheduler(1, user_queue_cap=100, queue_max=1000, clock=clock)
    gates = {n: asyncio.Event() for n in range(30)}
    log: list[str] = []
    jobs = [scheduler.submit(_job(f"j{n}", n, gates[n], log)) for n in range(30)]
    await settle()
    near, far = jobs[5], jobs[25]  # positions 5 and 25
    near_version, far_version = near.progress().version, far.progress().version
    clock.now += 15.0  # the first job takes as long as expected: the ETAs hold
    gates[0].set()
    assert await jobs[0].wait_done(WAIT)
    await settle()
    assert near.position == 4 and far.position == 24
    assert near.progress().version > near_version  # told: "position 4"
    assert far.progress().version == far_version  # 25 -> 24 is still "about 20 ahead"
    for gate in gates.values():
        gate.set()
    for job in jobs:
        assert await job.wait_done(WAIT)


async def test_one_simulation_serves_every_watcher_of_a_long_queue() -> None:
    """Watchers' refreshes line up; each re-simulating a 200-job queue stalled the loop."""

    class Counting(Scheduler):
        simulations = 0

        def _simulate_all(self, now: float):  # type: ignore[no-untyped-def]
            Counting.simulations += 1
            return super()._simulate_all(now)

    clock = Clock()
    scheduler = Counting(1, user_queue_cap=500, queue_max=1000, clock=clock)
    gates = {n: asyncio.Event() for n in range(200)}
    log: list[str] = []
    jobs = [scheduler.submit(_job(f"j{n}", n, gates[n], log)) for n in range(200)]
    await settle()
    Counting.simulations = 0
    positions = [job.position for job in jobs]  # every watcher asks at once
    assert positions[1:4] == [1, 2, 3] and Counting.simulations <= 1
    clock.now += 1.0  # later, the queue unchanged: asked again, simulated again once
    assert [job.position for job in jobs] == positions and Counting.simulations <= 2
    for gate in gates.values():
        gate.set()
    for job in jobs:
        assert await job.wait_done(WAIT)

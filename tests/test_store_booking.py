"""`booked()`: reserve -> call -> settle, and every way out of the block closes the books."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from bot.store.booking import booked

from bot.errors import DownloadError, RemixOutcomeUnknown, RemixRejected
from bot.store import QuotaDefaults, QuotaExceeded, Store
from tests.store_helpers import new_job


@pytest.fixture
async def store(tmp_path: Path):
    async with await Store.open(
        tmp_path / "remixbot.sqlite3", defaults=QuotaDefaults(limit=4)
    ) as s:
        yield s
        assert await s.check_books() == []


async def test_success_charges_what_was_delivered(store: Store) -> None:
    async with booked(store, new_job(images=3)) as b:
        assert (await b.running("req-1")).state == "running"
        await b.settle(delivered=2, withheld=1, billed=3)
    assert b.job.state == "delivered"
    assert (await store.quota_status(42, 7)).used == 2


@pytest.mark.parametrize(
    ("exc", "state", "cost"),
    [
        (RemixRejected("The backend rejected the prompt."), "failed", ("billed", 0)),
        (RemixOutcomeUnknown("The backend timed out."), "unknown", ("unknown", None)),
        (DownloadError("A result could not be fetched."), "failed", ("unknown", None)),
        (KeyError("bug"), "unknown", ("unknown", None)),
    ],
)
async def test_errors_refund_and_record_the_cost(store: Store, exc, state, cost) -> None:
    with pytest.raises(type(exc)):
        async with booked(store, new_job(images=2)) as b:
            await b.running()
            raise exc
    assert (b.job.state, await store.backend_cost(b.job.id)) == (state, cost)
    status = await store.quota_status(42, 7)
    assert (status.used, status.reserved, status.remaining) == (0, 0, 4)


async def test_refusal_reserves_nothing_and_leaving_early_fails(store: Store) -> None:
    with pytest.raises(QuotaExceeded):
        async with booked(store, new_job(images=5)):
            raise AssertionError("the block must not run")
    async with booked(store, new_job(images=1)) as b:
        pass  # never started, never settled
    assert (b.job.state, await store.backend_cost(b.job.id)) == ("failed", ("billed", 0))


async def test_cancellation_still_closes_the_books(store: Store) -> None:
    entered = asyncio.Event()

    async def worker() -> None:
        async with booked(store, new_job(images=2)) as b:
            await b.running()
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(worker())
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    (job,) = await store.list_jobs()
    assert job.state == "unknown"
    assert (await store.quota_status(42, 7)).remaining == 4


async def test_a_replayed_interaction_leaves_the_first_handlers_job_alone(store: Store) -> None:
    async with booked(store, new_job(images=2, interaction_id=55)) as first:
        await first.running("req-1")
        async with booked(store, new_job(images=2, interaction_id=55)) as again:
            assert again.replayed and again.job.id == first.job.id
        # The replay left without settling; the first handler's job is untouched.
        assert (await store.get_job(first.job.id)).state == "running"
        await first.settle(delivered=2, billed=2)
    status = await store.quota_status(42, 7)
    assert (status.used, status.reserved) == (2, 0)

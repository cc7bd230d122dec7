"""`booked(store, new_job)`: reserve -> call -> settle, with every failure path closing the books.

Use it around one backend call (the CLI's `remixbot remix`, the job runner):

    async with booked(store, new_job) as booking:      # QuotaRefused here: nothing reserved
        if booking.replayed:
            return
        await booking.running(backend_ref=None)
        result = await backend.remix(...)
        await booking.settle(delivered=len(images), withheld=n_unsafe, billed=n_billed)

A replayed interaction (double click, redelivery) yields the existing job with
`booking.replayed` True: skip the work, the first handler owns the job and its books.

Leaving the block without settling closes the job by the exception: a RemixError that may have
run (timeout after sending) -> `unknown` with the backend cost unknown; one that did not run ->
`failed`, billed 0; any other exception or a cancellation -> `failed` (or `unknown` once running).
Every path refunds the user's reservation; only `settle` charges.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.errors import RemixError, RemixOutcomeUnknown
from bot.store.models import Job, NewJob
from bot.store.store import Store


class Booking:
    """One reserved job inside `booked(...)`: mark it running, then settle it."""

    def __init__(self, store: Store, job: Job) -> None:
        self.store = store
        self.job = job

    @property
    def closed(self) -> bool:
        """True once the job is in a final state."""
        return self.job.final

    @property
    def replayed(self) -> bool:
        """True when the interaction was seen before: another handler owns this job, skip it."""
        return self.job.replayed

    async def running(self, backend_ref: str | None = None) -> Job:
        """Mark the job running (call just before sending it to the backend)."""
        self.job = await self.store.mark_running(self.job.id, backend_ref)
        return self.job

    async def settle(self, delivered: int, withheld: int = 0, billed: int | None = None) -> Job:
        """Charge the delivered images and refund the rest."""
        self.job = await self.store.settle(self.job.id, delivered, withheld, billed)
        return self.job

    async def fail(self, error: str, state: str = "failed", billed: int | None = None) -> Job:
        """Close the job without charging (failed, cancelled or unknown)."""
        self.job = await self.store.fail(self.job.id, error, state, billed)
        return self.job


def _closing(exc: BaseException, started: bool) -> tuple[str, str, int | None]:
    """(state, error text, billed) for a job left open by `exc`."""
    if isinstance(exc, RemixOutcomeUnknown):
        return "unknown", str(exc), None
    if isinstance(exc, RemixError):
        return "failed", str(exc), None if exc.may_have_run else 0
    if isinstance(exc, asyncio.CancelledError):
        text = "The job was cancelled."
        return ("unknown", text, None) if started else ("cancelled", text, 0)
    text = f"The job stopped on an internal error ({type(exc).__name__})."
    return ("unknown", text, None) if started else ("failed", text, 0)


@asynccontextmanager
async def booked(store: Store, new: NewJob) -> AsyncIterator[Booking]:
    """Reserve for `new` (raising QuotaRefused when refused) and close the books on every path."""
    booking = Booking(store, await store.submit_job(new))
    if booking.replayed:
        yield booking  # the first handler runs and closes it; a replay must not touch it
        return
    try:
        yield booking
    except BaseException as exc:
        if not booking.closed:
            state, text, billed = _closing(exc, booking.job.state == "running")
            # Shielded: a cancellation must not leave the reservation open.
            await asyncio.shield(booking.fail(text, state, billed))
        raise
    if not booking.closed:
        started = booking.job.state == "running"
        await booking.fail(
            "The job ended without a result.",
            "unknown" if started else "failed",
            None if started else 0,
        )

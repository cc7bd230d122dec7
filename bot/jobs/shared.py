"""The backend's in-flight budget shared with other processes that use the same key.

Within one process the scheduler counts the images at the backend itself. Several processes on
one key (shards of one bot on several machines) must also count each other's: before each
backend call a job takes a slot of its images in the shared count, and gives it back when the
backend answers, as it does locally. Where the count lives is the caller's business (the books'
database: bot/store/leases.py), behind `SharedSlots`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from bot.background import Background
from bot.jobs.ticket import JobId

log = logging.getLogger(__name__)

# How long a job waits between tries for a shared slot, at most (seconds).
MAX_POLL = 0.5


class SharedSlots(Protocol):
    """A count of images at the backend, shared by every process using the backend's key."""

    async def take(self, slot: str, images: int, budget: int) -> bool:
        """Hold `images` for `slot` if the count leaves room within `budget`; True if held."""

    async def give(self, slot: str) -> None:
        """Give `slot`'s images back."""


class SharedHolds:
    """The shared slots this process's jobs hold: waits to take one, gives back off the path."""

    def __init__(self, slots: SharedSlots, poll: float = MAX_POLL) -> None:
        self.slots = slots
        self.poll = poll
        self._held: set[JobId] = set()
        self._giving = Background()

    async def take(self, job_id: JobId, images: int, budget: int) -> None:
        """Wait until the job holds `images` of the shared budget (bounded by the job's own
        time limit). A database that cannot answer lets the call go: the backend's own 429s
        still hold the line, and the job is not lost to a bookkeeping failure."""
        if job_id in self._held:
            return
        delay = 0.02
        while True:
            try:
                if await self.slots.take(f"job-{job_id}", images, budget):
                    break
            except asyncio.CancelledError:  # the slot may have been taken as we were stopped
                self._held.add(job_id)
                self.give(job_id)
                raise
            except Exception:
                log.warning("job %s: the shared in-flight count did not answer", job_id)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.poll)
        self._held.add(job_id)

    def give(self, job_id: JobId) -> None:
        """Give the job's shared slot back, if it holds one (in the background)."""
        if job_id not in self._held:
            return
        self._held.discard(job_id)
        self._giving.spawn(self._give(job_id))

    async def _give(self, job_id: JobId) -> None:
        try:
            await self.slots.give(f"job-{job_id}")
        except Exception:  # the slot lapses with this process's lease
            log.warning("job %s: could not give its shared slot back", job_id)

    async def settle(self) -> None:
        """Wait for slots being given back (before the store closes)."""
        await self._giving.finish()

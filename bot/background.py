"""Work run without waiting for it, kept until it ends, and waited for (bounded) by its owner's close.

asyncio keeps only a weak reference to a task, so a fire-and-forget task must be held somewhere
until it ends; several owners (the lifecycle's late settles, moderation reports, the store's undone
submits, shared slots given back) each need that and a way to finish the work at a clean stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


class Background:
    """A set of tasks run in the background; `finish` waits for them (and any they start)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Awaitable[Any], name: str | None = None) -> asyncio.Future[Any]:
        """Run `work` now in the background, held until it ends."""
        task = asyncio.ensure_future(work)
        if name is not None and isinstance(task, asyncio.Task):
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def finish(self, grace: float | None = None) -> int:
        """Wait up to `grace` seconds (None: for as long as it takes) for the work in flight and
        any it starts meanwhile, then cancel the rest and let it end; how many were cancelled.
        Failures were the work's own to handle: none is raised here."""
        loop = asyncio.get_running_loop()
        deadline = None if grace is None else loop.time() + grace
        while self._tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=left)
        late = set(self._tasks)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)  # cancelled: each ends at once
        return len(late)

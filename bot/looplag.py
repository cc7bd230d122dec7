"""How late the event loop runs what is due: the gateway heartbeat and Discord's 3-second deadline
depend on it staying small."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class LoopLag:
    """A ticker that measures how late each of its wake-ups comes (the loop's stalls)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.longest = 0.0  # seconds, since start
        self.last = 0.0

    async def run(self) -> None:
        """Tick until cancelled, keeping the last and the longest lateness."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.last = max(loop.time() - due, 0.0)
            self.longest = max(self.longest, self.last)


@contextlib.asynccontextmanager
async def measuring(lag: LoopLag) -> AsyncIterator[LoopLag]:
    """Run `lag`'s ticker for the duration of the block."""
    task = asyncio.get_running_loop().create_task(lag.run(), name="loop-lag")
    try:
        yield lag
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

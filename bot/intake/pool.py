"""The async facade: every Pillow call of the bot runs here, in two small thread pools.

Two lanes, each its own `ThreadPoolExecutor`:

- **intake** (`workers`, default 2): members' uploads and style references (`prepare`,
  `prepare_style_refs`), stored inputs (`load_prepared`) and `run`.
- **results** (`result_workers`, default 2): work on images already paid for (`check_result`,
  `fit_for_upload`).

Why two executors and not one queue with priorities: a priority queue in front of shared workers
still makes a result wait for the uploads already *running* on them (a 25 MB TIFF holds a worker
for seconds, and a hostile one until the time limit), so a burst of uploads could still delay a
paid result. A lane of its own never waits for intake at all; the cost is up to four threads
sharing two cores while both lanes are busy, which slows both a little but blocks neither.

**Time limits count from the start of the work, not from the queue.** Each call is bounded by
`timeout` seconds measured from the moment a worker picks it up: a call that waited behind others
and then runs quickly is not timed out. Waiting for a worker is bounded separately, for intake
only (`queue_limit`, default 300 s): a member is told the bot is busy rather than left waiting
behind stuck workers. Results are never given up for waiting: they were paid for.

A thread cannot be killed: a call that times out answers its caller at once, while the worker
finishes on its own (see docs/intake.md).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bot.errors import InvalidImage
from bot.intake.fit import DISCORD_MAX_FILES, DISCORD_MESSAGE_LIMIT, UploadFile, fit_for_upload
from bot.intake.limits import IntakeLimits
from bot.intake.prepare import PreparedImage, prepare, prepare_style_refs
from bot.intake.stored import load_prepared
from bot.intake.verify import check_result

T = TypeVar("T")


class QueueTimeout(TimeoutError):
    """A call waited longer than `queue_limit` for a worker and was not started."""


class ImagePool:
    """Runs Pillow work off the loop: an intake lane and a results lane, each with its threads.

    Every call is bounded by `timeout` seconds from when a worker starts it (TimeoutError, or
    InvalidImage for the calls that answer a member); results never wait behind intake.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        result_workers: int = 2,
        timeout: float = 60.0,
        queue_limit: float | None = 300.0,
    ) -> None:
        self._intake = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pillow")
        self._results = ThreadPoolExecutor(
            max_workers=result_workers, thread_name_prefix="pillow-results"
        )
        self.timeout = timeout
        self.queue_limit = queue_limit
        self._closed = False

    async def _call(
        self,
        executor: ThreadPoolExecutor,
        queue_limit: float | None,
        fn: Callable[..., T],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        """Run fn in `executor`: wait for a worker (at most queue_limit), then at most timeout."""
        if self._closed:
            raise RuntimeError("ImagePool is closed")
        loop = asyncio.get_running_loop()
        started: asyncio.Future[float] = loop.create_future()

        def mark_started(at: float) -> None:
            if not started.done():
                started.set_result(at)

        def work() -> T:
            # Recorded on the worker, so the limit starts when the work does, not when the loop
            # gets round to noticing.
            loop.call_soon_threadsafe(mark_started, time.monotonic())
            return fn(*args, **kwargs)

        future = loop.run_in_executor(executor, work)
        try:
            await asyncio.wait(
                {started, future}, timeout=queue_limit, return_when=asyncio.FIRST_COMPLETED
            )
            if not started.done() and not future.done():
                # Still queued: the executor drops it (a cancelled work item never runs).
                future.cancel()
                raise QueueTimeout(f"no worker free within {queue_limit:g} seconds")
            if future.done():
                return future.result()
            remaining = self.timeout - (time.monotonic() - started.result())
            # On time out wait_for cancels our future; the worker's own call runs to its end.
            return await asyncio.wait_for(future, max(0.0, remaining))
        except asyncio.CancelledError:
            future.cancel()  # a caller that gives up also takes its work out of the queue
            raise
        finally:
            started.cancel()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run any other blocking Pillow call in the intake lane (TimeoutError past `timeout`)."""
        return await self._call(self._intake, self.queue_limit, fn, *args, **kwargs)

    async def prepare(
        self, data: bytes, *, aspect_ratio: str | None, limits: IntakeLimits
    ) -> PreparedImage:
        """Async :func:`bot.intake.prepare`."""
        try:
            return await self.run(prepare, data, aspect_ratio=aspect_ratio, limits=limits)
        except QueueTimeout:
            raise _busy() from None
        except TimeoutError:
            raise InvalidImage(
                f"That image took more than {self.timeout:g} seconds to prepare; "
                "send a smaller JPEG, PNG or WebP."
            ) from None

    async def prepare_style_refs(
        self, datas: Sequence[bytes], limits: IntakeLimits
    ) -> list[PreparedImage]:
        """Async :func:`bot.intake.prepare_style_refs`."""
        try:
            return await self.run(prepare_style_refs, list(datas), limits)
        except QueueTimeout:
            raise _busy() from None
        except TimeoutError:
            raise InvalidImage(
                f"The style reference images took more than {self.timeout:g} seconds to "
                "prepare; send smaller ones."
            ) from None

    async def load_prepared(self, data: bytes) -> PreparedImage:
        """Async :func:`bot.intake.stored.load_prepared`: a stored input, as it was, no re-encode."""
        try:
            return await self.run(load_prepared, data)
        except QueueTimeout:
            raise _busy() from None

    async def check_result(self, path: Path, *, whole: bool = False) -> None:
        """Async :func:`bot.intake.verify.check_result` (InvalidImage when damaged or too slow)."""
        try:
            await self._call(self._results, None, check_result, path, whole=whole)
        except TimeoutError:
            raise InvalidImage(
                f"A result image took more than {self.timeout:g} seconds to decode."
            ) from None

    async def fit_for_upload(
        self,
        files: Sequence[UploadFile],
        per_file_limit: int,
        per_message_limit: int = DISCORD_MESSAGE_LIMIT,
        max_files: int = DISCORD_MAX_FILES,
    ) -> list[list[UploadFile]]:
        """Async :func:`bot.intake.fit_for_upload` in the results lane (TimeoutError past
        `timeout`)."""
        return await self._call(
            self._results,
            None,
            fit_for_upload,
            list(files),
            per_file_limit,
            per_message_limit,
            max_files,
        )

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers; queued calls are cancelled, running ones finish."""
        self._closed = True
        for executor in (self._intake, self._results):
            executor.shutdown(wait=wait, cancel_futures=True)

    async def aclose(self) -> None:
        """Close without blocking the loop while running calls finish."""
        self._closed = True
        await asyncio.to_thread(functools.partial(self.close, wait=True))

    async def __aenter__(self) -> ImagePool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _busy() -> InvalidImage:
    return InvalidImage(
        "The bot is busy preparing other images; try again in a minute (you were not charged)."
    )

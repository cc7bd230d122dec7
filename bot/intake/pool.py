"""The async facade: every Pillow call of the bot runs here, in a small thread pool."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bot.errors import InvalidImage
from bot.intake.fit import DISCORD_MAX_FILES, DISCORD_MESSAGE_LIMIT, UploadFile, fit_for_upload
from bot.intake.limits import IntakeLimits
from bot.intake.prepare import PreparedImage, prepare, prepare_style_refs
from bot.intake.verify import check_result

T = TypeVar("T")


class ImagePool:
    """Runs prepare / prepare_style_refs / check_result / fit_for_upload off the loop (2 threads).

    Pillow releases the GIL while decoding, resampling and encoding, so two workers use both
    cores of a small VM while the loop keeps serving the gateway. Each call is bounded by
    `timeout` seconds: the caller gets an answer even if a worker is stuck.
    """

    def __init__(self, workers: int = 2, *, timeout: float = 60.0) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pillow")
        self.timeout = timeout
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run any other blocking Pillow call in the pool, bounded by `timeout` (TimeoutError)."""
        if self._closed:
            raise RuntimeError("ImagePool is closed")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        return await asyncio.wait_for(future, self.timeout)

    async def prepare(
        self, data: bytes, *, aspect_ratio: str | None, limits: IntakeLimits
    ) -> PreparedImage:
        """Async :func:`bot.intake.prepare`."""
        try:
            return await self.run(prepare, data, aspect_ratio=aspect_ratio, limits=limits)
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
        except TimeoutError:
            raise InvalidImage(
                f"The style reference images took more than {self.timeout:g} seconds to "
                "prepare; send smaller ones."
            ) from None

    async def check_result(self, path: Path) -> None:
        """Async :func:`bot.intake.verify.check_result` (InvalidImage when damaged or too slow)."""
        try:
            await self.run(check_result, path)
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
        """Async :func:`bot.intake.fit_for_upload` (TimeoutError past `timeout`)."""
        return await self.run(
            fit_for_upload, list(files), per_file_limit, per_message_limit, max_files
        )

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers; queued calls are cancelled, a running one finishes."""
        self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=True)

    async def aclose(self) -> None:
        """Close without blocking the loop while a running call finishes."""
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)

    async def __aenter__(self) -> ImagePool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

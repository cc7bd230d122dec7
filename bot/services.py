"""Builds and closes the bot's long-lived services: store, image pool, sessions, backend, scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bot.intake import ImagePool
from bot.jobs import Scheduler
from bot.metrics import NULL_METRICS, Metrics
from bot.remix.backends import Backend, make_backend
from bot.remix.download import DownloadPolicy, make_download_session
from bot.settings import Settings
from bot.store import ReconcileReport, Store
from bot.workflow import RemixService

log = logging.getLogger(__name__)

# How long shutdown waits for jobs already at the backend before calling them interrupted.
DRAIN_SECONDS = 20.0
# How often stored input images past REMIXBOT_RETENTION_DAYS are deleted (also once at start).
SWEEP_EVERY_SECONDS = 6 * 3600.0


@dataclass
class Services:
    """Everything the Discord side needs, built once per process."""

    settings: Settings
    store: Store
    pool: ImagePool
    backend: Backend
    scheduler: Scheduler
    remix: RemixService
    reconciled: ReconcileReport

    sweeper: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Stop taking work (if the bot has not already), then stop the background tasks."""
        if self.sweeper is not None:
            self.sweeper.cancel()
        await self.remix.shutdown(DRAIN_SECONDS)  # a second call finds nothing left to drain
        if self.scheduler.shared is not None:  # shared slots given back before the store closes
            await self.scheduler.shared.settle()


class SharedBackendSlots:
    """The backend's in-flight budget counted in the books, shared by every process using the
    same backend key (the books in PostgreSQL); the key is named by a hash, never itself."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        key = settings.api_key.get() if settings.api_key else ""
        material = f"{settings.backend}|{settings.backend_url}|{key}".encode()
        self.key = hashlib.sha256(material).hexdigest()[:32]

    async def take(self, slot: str, images: int, budget: int) -> bool:
        """Hold `images` for `slot` if the processes' slots leave room within `budget`."""
        return await self.store.take_backend_slot(self.key, slot, images, budget)

    async def give(self, slot: str) -> None:
        """Give `slot` back."""
        await self.store.give_backend_slot(self.key, slot)


def sweep_undelivered(data_dir: Path, retention_days: int) -> int:
    """Delete kept-but-unposted result folders older than the retention period (blocking)."""
    cutoff = time.time() - retention_days * 86400
    removed = 0
    for folder in (data_dir / "undelivered").glob("job-*"):
        with contextlib.suppress(OSError):
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder)
                removed += 1
    return removed


async def _sweep_forever(
    store: Store, settings: Settings, every: float = SWEEP_EVERY_SECONDS
) -> None:
    """Delete stored inputs and undelivered results past the retention period, now and then
    every few hours."""
    while True:
        try:
            removed = await store.sweep_inputs()
            removed += await asyncio.to_thread(
                sweep_undelivered, settings.data_dir, settings.retention_days
            )
            if removed:
                log.info("retention sweep removed %d stored image(s) or folder(s)", removed)
        except Exception:  # a failed sweep is retried next time; it must not stop the bot
            log.warning("retention sweep failed", exc_info=True)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, *, metrics: Metrics = NULL_METRICS
) -> AsyncIterator[Services]:
    """Open every service, reconcile jobs left by a previous run, and close them all on exit;
    the lifecycle counts into `metrics` (the HTTP endpoint's, when it is on)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        store = await Store.from_settings(settings)
        stack.push_async_callback(store.close)
        pool = ImagePool()
        stack.push_async_callback(pool.aclose)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15)
        api_session = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=timeout, trust_env=False)
        )
        download_session = await stack.enter_async_context(
            make_download_session(DownloadPolicy.from_settings(settings))
        )
        backend = make_backend(settings, api_session)
        # With the books in PostgreSQL, several processes may share the backend key: they share
        # its in-flight budget through the books too.
        shared = SharedBackendSlots(store, settings) if store.kind == "postgresql" else None
        scheduler = Scheduler.from_settings(settings, shared=shared)
        remix = RemixService(
            settings,
            store=store,
            pool=pool,
            backend=backend,
            download_session=download_session,
            scheduler=scheduler,
        )
        remix.lifecycle.metrics = metrics
        # What the last process left open: the bot carries on with it once Discord is ready.
        report = await remix.reconcile()
        if report.requeue or report.resumable or report.closed_unknown:
            log.warning(
                "picking up jobs left open by the last run: %d queued again, %d resumed, "
                "%d lost at the backend (refunded, members told)",
                len(report.requeue),
                len(report.resumable),
                len(report.closed_unknown),
            )
        if report.failed or report.unknown:
            log.warning(
                "reconciled jobs left open by the last run: %d refunded, %d outcome unknown",
                len(report.failed),
                len(report.unknown),
            )
        if report.elsewhere:
            log.warning(
                "%d open job(s) belong to other processes still using %s (remixbot remix, or "
                "another bot process); left to them",
                len(report.elsewhere),
                store.database,
            )
        services = Services(settings, store, pool, backend, scheduler, remix, report)
        services.sweeper = asyncio.create_task(
            _sweep_forever(store, settings), name="retention-sweep"
        )
        try:
            yield services
        finally:
            await services.close()

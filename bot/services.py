"""Builds and closes the bot's long-lived services: store, image pool, sessions, backend, scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from bot.intake import ImagePool
from bot.jobs import Scheduler
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


async def _sweep_forever(store: Store, every: float = SWEEP_EVERY_SECONDS) -> None:
    """Delete stored inputs past the retention period, now and then every few hours."""
    while True:
        try:
            removed = await store.sweep_inputs()
            if removed:
                log.info("retention sweep removed %d stored input image(s)", removed)
        except Exception:  # a failed sweep is retried next time; it must not stop the bot
            log.warning("retention sweep failed", exc_info=True)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Open every service, reconcile jobs left by a previous run, and close them all on exit."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        store = await Store.from_settings(settings)
        stack.push_async_callback(store.close)
        report = await store.reconcile()
        if report.failed or report.unknown:
            log.warning(
                "reconciled jobs left open by the last run: %d refunded, %d outcome unknown",
                len(report.failed),
                len(report.unknown),
            )
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
        scheduler = Scheduler.from_settings(settings)
        remix = RemixService(
            settings,
            store=store,
            pool=pool,
            backend=backend,
            download_session=download_session,
            scheduler=scheduler,
        )
        services = Services(settings, store, pool, backend, scheduler, remix, report)
        services.sweeper = asyncio.create_task(_sweep_forever(store), name="retention-sweep")
        try:
            yield services
        finally:
            await services.close()

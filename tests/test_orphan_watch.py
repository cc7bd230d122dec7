"""Defect 8, the running bot's side: a terminal run killed while the bot runs for weeks gives its
member's images back within the bot's periodic check, not at the bot's next start."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from bot.intake import ImagePool
from bot.jobs import Scheduler
from bot.remix.backends import make_backend
from bot.remix.download import DownloadPolicy, make_download_session
from bot.settings import load_settings
from bot.store import CLI_USER_ID, Store
from bot.workflow import RemixService
from tests.fakeremix import FakeRemix
from tests.fakeremix.helpers import fake_env

ROOT = Path(__file__).resolve().parent.parent

# A terminal run: open the store, reserve and start a job, then wait to be killed.
WORKER = """
import asyncio, sys
from bot.store import CLI_USER_ID, NewJob, QuotaDefaults, Store

async def main(db):
    store = await Store.open(db, defaults=QuotaDefaults(limit=25))
    job = await store.submit_job(NewJob(
        interaction_id=None, guild_id=None, channel_id=None, user_id=CLI_USER_ID, kind="remix",
        parent_job_id=None, request={"prompt": "x", "num_images": 2}, input_key=None,
        style_ref_keys=(), backend="ideogram", images=2))
    await store.mark_running(job.id)
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1]))
"""


async def test_the_bot_frees_a_killed_terminal_runs_images_while_it_runs(
    tmp_path: Path, fake: FakeRemix
) -> None:
    settings = load_settings(fake_env(fake, REMIXBOT_DATA_DIR=str(tmp_path / "data")), dotenv=None)
    settings.data_dir.mkdir(parents=True)
    policy = DownloadPolicy.from_settings(settings)
    async with (
        aiohttp.ClientSession() as api,
        make_download_session(policy) as downloads,
        ImagePool() as pool,
        await Store.from_settings(settings) as store,
    ):
        service = RemixService(
            settings,
            store=store,
            pool=pool,
            backend=make_backend(settings, api),
            download_session=downloads,
            scheduler=Scheduler.from_settings(settings),
        )
        # The bot is running (its store is open) when the terminal run starts and is killed.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            str(settings.db_path),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"ready"
        assert (await store.quota_status(CLI_USER_ID, None)).reserved == 2
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)

        watcher = asyncio.create_task(service.watch_orphans(lambda job: None, every=0.2))
        try:
            for _ in range(100):  # bounded: 10 s
                if (await store.quota_status(CLI_USER_ID, None)).reserved == 0:
                    break
                await asyncio.sleep(0.1)
        finally:
            watcher.cancel()
        status = await store.quota_status(CLI_USER_ID, None)
        assert (status.reserved, status.used) == (0, 0)
        [job] = await store.list_jobs()
        assert job.state == "unknown"  # it was running at a synchronous backend: refunded
        assert await store.check_books() == []
        await service.close()

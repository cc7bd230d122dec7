"""open_services: the composition the bot runs on (reconcile and retention sweep at start)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from bot.services import open_services, sweep_undelivered
from bot.settings import load_settings
from bot.store import Store


async def test_start_sweeps_inputs_past_retention_and_keeps_fresh_ones(tmp_path: Path) -> None:
    settings = load_settings(
        {"REMIXBOT_DATA_DIR": str(tmp_path), "REMIXBOT_RETENTION_DAYS": "30"}, dotenv=None
    )
    async with await Store.from_settings(settings) as store:
        old = await store.inputs.put(b"old input image bytes")
        fresh = await store.inputs.put(b"fresh input image bytes")
    old_files = [p for p in (tmp_path / "inputs").rglob("*") if p.is_file() and old in p.name]
    assert old_files
    forty_days_ago = time.time() - 40 * 86400
    for path in old_files:
        os.utime(path, (forty_days_ago, forty_days_ago))
    async with open_services(settings) as services:
        for _ in range(100):  # the sweep runs as a task right after start (bounded wait)
            if await services.store.inputs.get(old) is None:
                break
            await asyncio.sleep(0.02)
        assert await services.store.inputs.get(old) is None
        assert await services.store.inputs.get(fresh) == b"fresh input image bytes"


def test_undelivered_results_past_retention_are_deleted(tmp_path: Path) -> None:
    old = tmp_path / "undelivered" / "job-1"
    fresh = tmp_path / "undelivered" / "job-2"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "remix-1.png").write_bytes(b"png")
    forty_days_ago = time.time() - 40 * 86400
    os.utime(old, (forty_days_ago, forty_days_ago))
    assert sweep_undelivered(tmp_path, 30) == 1
    assert not old.exists() and fresh.exists()

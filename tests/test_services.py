"""open_services: the composition the bot runs on (reconcile and retention sweep at start)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from bot.services import open_services, sweep_undelivered
from bot.settings import load_settings
from bot.store import Store
from tests.store_helpers import new_job, terminal_job


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


@pytest.mark.parametrize("backend", ["task-proxy", "ideogram"])
async def test_start_closes_a_dead_runs_jobs_as_before(tmp_path: Path, backend: str) -> None:
    # Until the lifecycle runs requeued jobs, a queued Discord job left by a crash is failed and
    # refunded at start; a running one resumes only when the configured backend can resume it.
    settings = load_settings(
        {
            "REMIXBOT_DATA_DIR": str(tmp_path),
            "REMIXBOT_BACKEND": backend,
            "REMIXBOT_BACKEND_URL": "http://127.0.0.1:9",  # never called here
        },
        dotenv=None,
    )
    async with await Store.from_settings(settings) as gone:
        queued = await gone.submit_job(new_job(images=2, backend=backend))
        running = await gone.submit_job(new_job(images=3, backend="task-proxy"))
        await gone.mark_running(running.id, "task-1")
        terminal = await gone.submit_job(terminal_job(1, backend="task-proxy"))
        await gone.mark_running(terminal.id, "task-2")
    async with open_services(settings) as services:
        report = services.reconciled
        assert report.requeue == ()
        assert (await services.store.get_job(queued.id)).state == "failed"
        assert await services.store.backend_cost(queued.id) == ("billed", 0)
        assert (await services.store.get_job(terminal.id)).state == "unknown"
        assert report.failed == (queued.id,)
        if backend == "task-proxy":
            assert [j.id for j in report.resumable] == [running.id]
            await services.store.fail(running.id, "test over", "unknown")
        else:  # a synchronous bot cannot poll the task: closed, and the member is to be told
            assert [j.id for j in report.closed_unknown] == [running.id]
        assert (await services.store.quota_status(42, 7)).reserved == 0
        assert await services.store.check_books() == []

"""A job runs with the images prepared when it was accepted (not read back from disk and passed
through the pool again); only the last few accepted jobs hold theirs in memory, the others read
their stored input back; a member who forgets their data before their job starts gets no run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bot.workflow import FRESH_KEPT
from tests.fakediscord.helpers import png_bytes
from tests.remixworld import World, running_world

# What a read back from disk would find in place of a stored input.
NOT_AN_IMAGE = b"this is not an image any more"


async def _queue(w: World, count: int) -> list[Any]:
    """`count` /remix held in the queue (scheduler paused), each with its own image."""
    w.services.scheduler.pause(30.0)
    inters = [
        await w.slash_remix(png_bytes(100 + n, 80, (n * 20 % 256, 40, 90)), seed=n)
        for n in range(count)
    ]

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        jobs = await w.services.store.list_jobs(limit=100)
        if len(jobs) == count and all(j.state == "queued" for j in jobs):
            return inters
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{count} jobs were not all queued within 15 s")


def _spoil_stored_inputs(w: World, jobs: list[Any]) -> dict[int, bytes]:
    """Overwrite every stored input; return what each job prepared."""
    prepared = {}
    for job in jobs:
        path = w.services.store.inputs.path(job.input_key)
        prepared[job.id] = path.read_bytes()
        path.write_bytes(NOT_AN_IMAGE)
    return prepared


async def test_a_job_runs_with_the_images_it_was_accepted_with(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        [inter] = await _queue(w, 1)
        [job] = await w.services.store.list_jobs()
        prepared = _spoil_stored_inputs(w, [job])
        w.services.scheduler._resume()
        await w.result_message(inter)
        assert w.remix.last().files["image"][0].data == prepared[job.id]


async def test_only_the_last_few_accepted_jobs_hold_their_images(tmp_path: Path) -> None:
    count = FRESH_KEPT + 2
    async with running_world(tmp_path / "data", REMIXBOT_USER_QUEUE_CAP="10") as w:
        await _queue(w, count)
        jobs = sorted(await w.services.store.list_jobs(limit=100), key=lambda j: j.id)
        prepared = _spoil_stored_inputs(w, jobs)
        w.services.scheduler._resume()
        final = sorted(await w.jobs_final(count), key=lambda j: j.id)
        # The oldest read their (spoiled) input back and were not started; the rest ran.
        assert [j.state for j in final] == ["cancelled"] * 2 + ["delivered"] * FRESH_KEPT
        sent = [r.files["image"][0].data for r in w.remix.api_requests()]
        assert sorted(sent) == sorted(prepared[j.id] for j in jobs[2:])
        assert await w.books_balance() == []


async def test_a_member_who_forgets_before_the_start_gets_no_run(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        [inter] = await _queue(w, 1)
        [job] = await w.services.store.list_jobs()
        await w.services.store.forget(job.user_id)
        w.services.scheduler._resume()
        [closed] = await w.jobs_final(1)
        assert closed.state == "cancelled"
        assert w.remix.api_requests() == []
        assert "no longer stored" in w.discord.original(inter).content

"""What a waiting job keeps alive, for the garbage collector's full passes: a thousand queued jobs
must not each hold a reference cycle or discord.py's copy of their "thinking…" message, and what
logging in made is frozen once, at the first ready."""

from __future__ import annotations

import gc
from pathlib import Path

import discord

from bot.cli.run import freeze_once
from tests.fakediscord.helpers import png_bytes
from tests.remixworld import running_world


async def test_a_queued_job_keeps_only_the_id_of_its_deferred_response(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        w.services.scheduler.pause(30.0)  # the job waits in the queue
        inters = [await w.slash_remix(png_bytes()) for _ in range(3)]

        def all_queued() -> bool:
            messages = [w.discord.original(i) for i in inters]
            return all(m is not None and "remix:cancel:" in str(m.custom_ids()) for m in messages)

        await w.discord.wait_until(all_queued, 10, "three jobs shown queued")
        assert len(w.services.scheduler.queued()) == 3
        gc.collect()  # what is still alive after this is held by someone
        kept = [o for o in gc.get_objects() if isinstance(o, discord.InteractionMessage)]
        assert kept == []
        w.services.scheduler._resume()  # and they run and post as ever
        for inter in inters:
            await w.result_message(inter)


async def test_the_first_ready_freezes_what_the_start_made_and_a_later_ready_nothing() -> None:
    on_ready = freeze_once()
    kept: list[list[int]] = []
    try:
        before = gc.get_freeze_count()
        kept.extend([n] for n in range(1000))
        await on_ready()
        first = gc.get_freeze_count()
        assert first >= before + 1000
        kept.extend([n] for n in range(1000))  # made after: a reconnect's ready leaves them be
        await on_ready()
        assert gc.get_freeze_count() < first + 1000
    finally:
        gc.unfreeze()

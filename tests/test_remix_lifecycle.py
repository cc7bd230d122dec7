"""Jobs across a clean stop, a restart and the scheduler's time limit: nothing paid is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import bot.services as services_mod
from bot.cli.run import serve
from bot.store import Store
from tests.fakediscord.helpers import png_bytes
from tests.fakediscord.server import FakeDiscord
from tests.fakeremix import running_fake
from tests.remixworld import running_world, world_settings


async def _serve(settings, discord: FakeDiscord) -> tuple[asyncio.Task[int], asyncio.Event]:
    """`remixbot run`'s own serve(), as a task with its stop event (what SIGTERM sets)."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(
            settings,
            discord.token,
            bot_options={"guild_ready_timeout": 0.05},
            stop=stop,
        )
    )
    await discord.wait_identified()
    await discord.wait_until(lambda: discord.commands, 10, "the command sync")
    return task, stop


async def test_clean_stop_delivers_running_jobs_and_refunds_queued_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        r.api_delay = 1.5  # the generation is under way when the stop comes
        settings = world_settings(d, r, data, REMIXBOT_INFLIGHT_IMAGES="1")
        server, stop = await _serve(settings, d)
        running = await d.slash(
            "remix", {"image": d.upload_attachment("a.png", png_bytes()), "prompt": "first"}
        )
        await d.wait_until(lambda: r.requests, 10, "the backend call")
        bob = await d.slash(
            "remix",
            {"image": d.upload_attachment("b.png", png_bytes()), "prompt": "second"},
            user=d.bob,
        )
        await d.wait_until(lambda: bob.response_type == 5, 10, "the second defer")
        await asyncio.sleep(0.3)  # let the second job reach the queue
        stop.set()  # SIGTERM
        assert await asyncio.wait_for(server, 40) == 0
        first = d.original(running)
        assert first is not None and len(first.attachments) == 1  # posted before the gateway closed
        second = d.original(bob)
        assert second is not None and "restarting" in second.content and not second.attachments
        async with await Store.from_settings(settings) as store:
            jobs = sorted(await store.list_jobs(), key=lambda j: j.id)
            assert [j.state for j in jobs] == ["delivered", "cancelled"]
            assert await store.check_books() == []
        assert len(r.api_requests()) == 1  # the queued job never reached the backend


async def test_clean_stop_leaves_task_proxy_jobs_for_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services_mod, "DRAIN_SECONDS", 0.5)
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        r.task_outcome = "never"  # still generating when the bot stops
        env = {"REMIXBOT_BACKEND": "task-proxy", "REMIXBOT_TASK_MAX_WAIT": "60"}
        settings = world_settings(d, r, data, **env)
        server, stop = await _serve(settings, d)
        inter = await d.slash(
            "remix", {"image": d.upload_attachment("a.png", png_bytes()), "prompt": "x"}
        )
        await d.wait_until(lambda: r.tasks, 10, "the task submit")
        await asyncio.sleep(0.3)
        stop.set()
        assert await asyncio.wait_for(server, 40) == 0
        async with await Store.from_settings(settings) as store:
            [job] = await store.list_jobs()
            assert (job.state, job.backend_ref in r.tasks) == ("running", True)
        assert "posted when it is back" in d.original(inter).content
        r.task_outcome = "succeed"
        before = set(d.messages)
        async with running_world(data, discord=d, remix=r, **env) as w:
            reply = await w.discord.wait_for_message(
                lambda m: bool(m.attachments), after=before, within=20
            )
            assert f"<@{d.alice['id']}>" in reply.content
            [done] = await w.jobs_final(1)
            assert done.state == "delivered"
            assert await w.books_balance() == []


async def test_time_limit_during_upload_lets_the_post_finish_and_closes_the_books(
    tmp_path: Path,
) -> None:
    async with running_world(tmp_path / "data") as w:
        w.services.scheduler.run_timeout = 1.0  # stands in for the real limit (minutes)
        # Discord answers every edit of the response with a 3 s rate limit: a slow upload.
        w.discord.rate_limit("PATCH", r".*/messages/@original", retry_after=3.0, times=3)
        await w.slash_remix(png_bytes(), num_images=2)
        [job] = await w.jobs_final(1, within=30)
        # The limit came while the results were being posted: the post is given its grace to
        # finish, and a result the member sees is charged, never "could not be posted".
        assert job.state == "delivered"
        status = await w.services.store.quota_status(job.user_id, job.guild_id)
        assert (status.used, status.reserved) == (2, 0)
        assert await w.books_balance() == []
        assert not list((tmp_path / "data" / "work").glob("job-*"))


async def test_a_clean_stop_lets_a_moderation_log_post_on_its_way_arrive(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        log = d.add_channel("mod-log")
        settings = world_settings(d, r, data)
        async with await Store.from_settings(settings) as store:
            await store.set_log_channel(int(d.guild_id), int(log))
            await store.set_prompt_block(int(d.guild_id), "word", "gore")
        server, stop = await _serve(settings, d)
        posts = rf"/channels/{log}/messages"
        d.delay("POST", posts, 1.0)  # a slow log channel
        await d.slash(
            "remix", {"image": d.upload_attachment("a.png", png_bytes()), "prompt": "gore here"}
        )
        await d.wait_until(lambda: d.calls_to("POST", posts), 10, "the log post on its way")
        stop.set()  # SIGTERM while the post is still on its way
        assert await asyncio.wait_for(server, 40) == 0
        # It arrived before the bot's Discord session closed, not cut off by it.
        [entry] = d.channel_messages(log)
        assert entry.embeds[0]["title"] == "Prompt refused"
        assert [c.status for c in d.calls_to("POST", posts)] == [200]
        assert r.api_requests() == []

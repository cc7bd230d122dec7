"""Rerolls and controls obey the same gates as /remix: a 🔁 or a button from a member who is
blocked, out of quota, or in a channel where /remix is not allowed (the server's channel list or
its command permissions) costs no work — no status message, no image processing — and gets at
most one short reply."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes
from tests.remixworld import World, running_world


class PillowCalls:
    """Counts the image pool's work (a real call through, only counted)."""

    def __init__(self, w: World, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        pool = w.services.pool
        original = pool._call

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(pool, "_call", counted)


async def _result(w: World) -> tuple[Any, Any]:
    inter = await w.slash_remix(png_bytes())
    msg = await w.result_message(inter)
    [job] = await w.jobs_final(1)
    return msg, job


def _new_messages(w: World, before: set[str]) -> list[Any]:
    return [m for i, m in w.discord.messages.items() if i not in before]


async def _reaction_refused(
    w: World, msg: Any, user: dict[str, Any], pillow: PillowCalls, times: int = 3
) -> str:
    """React 🔁 `times` times (each past the double-tap window); one short reply, no work."""
    before = set(w.discord.messages)
    work = pillow.count
    for _ in range(times):
        w.services.remix.repeats._seen.clear()  # as if the 10-second window had passed
        await w.discord.react(msg.id, "🔁", user=user)
    [reply] = await w.discord.wait_until(lambda: _new_messages(w, before), 10, "the reply")
    await _settle(w)
    assert len(_new_messages(w, before)) == 1  # at most one reply, and no "Rerolling…" status
    assert "Rerolling" not in reply.content
    assert pillow.count == work  # no image processing
    assert len(await w.services.store.list_jobs()) == 1  # nothing reserved
    return reply.content


async def _settle(w: World) -> None:
    """Give the bot half a second to do anything more it was going to do (bounded)."""
    await asyncio.sleep(0.5)


async def test_a_channel_off_the_server_list_refuses_every_way_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_world(tmp_path / "data") as w:
        msg, job = await _result(w)
        guild, channel = int(w.discord.guild_id), int(w.discord.channel_id)
        await w.services.store.set_channel_mode(guild, "deny")
        await w.services.store.set_channel(guild, channel, True)
        pillow = PillowCalls(w, monkeypatch)
        closed = "Remixing is not allowed in this channel; ask a server admin where it is."
        await w.slash_remix(png_bytes())
        await w.discord.wait_until(lambda: closed in w.ephemeral_replies(), 10, "/remix refused")
        click = await w.discord.click(msg.id, f"remix:reroll:{job.id}", user=w.discord.bob)
        assert await w.private_answer(click) == closed
        pick = await w.discord.select(msg.id, f"remix:vary:{job.id}", ["1:subtle"])
        assert await w.private_answer(pick) == closed
        text = await _reaction_refused(w, msg, w.discord.bob, pillow)
        assert closed in text
        assert len(w.remix.api_requests()) == 1
        # Opening the channel again lets everything through.
        await w.services.store.set_channel_mode(guild, "all")
        w.services.remix.repeats._seen.clear()
        click = await w.discord.click(msg.id, f"remix:reroll:{job.id}", user=w.discord.bob)
        await w.result_message(click)


async def test_blocked_and_out_of_quota_members_cost_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_DEFAULT_LIMIT="1") as w:
        msg, job = await _result(w)
        pillow = PillowCalls(w, monkeypatch)
        # Alice used her one image: out of quota.
        click = await w.discord.click(msg.id, f"remix:reroll:{job.id}")
        assert (await w.private_answer(click)).startswith("You have 0 of 1 image left today")
        text = await _reaction_refused(w, msg, w.discord.alice, pillow)
        assert "You have 0 of 1 image left today" in text
        # Bob is blocked: the button tells him why, privately; the channel never sees why.
        await w.services.store.block(
            int(w.discord.bob["id"]), "spamming the channel", guild_id=None
        )
        click = await w.discord.click(msg.id, f"remix:reroll:{job.id}", user=w.discord.bob)
        assert (
            await w.private_answer(click) == "You are blocked from remixing: spamming the channel."
        )
        text = await _reaction_refused(w, msg, w.discord.bob, pillow)
        assert "spamming" not in text and "/quota" in text
        assert len(w.remix.api_requests()) == 1


async def test_the_server_s_command_permissions_close_the_controls_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeDiscord() as d:
        async with running_world(tmp_path / "data", discord=d) as w:
            msg, job = await _result(w)
            # An admin took /remix away from @everyone here (Server Settings → Integrations).
            d.set_command_permissions("remix", [{"id": d.guild_id, "type": 1, "permission": False}])
            results = w.bot.get_cog("Results")
            await asyncio.wait_for(results._warming, 10)  # fetched at ready, before the change
            results.access._guilds.clear()  # the minute's cache, passed
            pillow = PillowCalls(w, monkeypatch)
            click = await d.click(msg.id, f"remix:reroll:{job.id}", user=d.bob)
            assert (await w.private_answer(click)).startswith(
                "You can't use /remix in this channel"
            )
            text = await _reaction_refused(w, msg, d.bob, pillow)
            assert "can't use /remix" in text
            # The owner is allowed by name: their reroll runs.
            d.set_command_permissions(
                "remix",
                [
                    {"id": d.guild_id, "type": 1, "permission": False},
                    {"id": d.owner["id"], "type": 2, "permission": True},
                ],
            )
            w.services.remix.repeats._seen.clear()
            results.access._guilds.clear()  # the minute's cache, passed
            owner = await d.click(msg.id, f"remix:reroll:{job.id}", user=d.owner)
            await w.result_message(owner)


async def test_a_paused_server_takes_no_new_jobs(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        msg, job = await _result(w)
        await w.services.store.set_paused(int(w.discord.guild_id), True)
        paused = "Remixing is paused on this server by its admins; try again later."
        await w.slash_remix(png_bytes())
        await w.discord.wait_until(lambda: paused in w.ephemeral_replies(), 10, "/remix refused")
        click = await w.discord.click(msg.id, f"remix:edit:{job.id}")
        await w.discord.wait_until(lambda: click.modal, 10, "the Edit modal")
        submit = await w.discord.submit_modal(click, {"prompt": "a dog"})
        assert await w.private_answer(submit) == paused
        assert len(w.remix.api_requests()) == 1
        await w.services.store.set_paused(int(w.discord.guild_id), False)
        inter = await w.slash_remix(png_bytes())
        await w.result_message(inter)

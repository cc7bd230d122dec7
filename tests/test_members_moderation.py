"""Moderation with a way back: a server's prompt block list refuses before any charge, in one
sentence that does not repeat the prompt; the admin log channel receives refusals, blocks and
the backend's safety rejections; every member-visible echo of a prompt is shown literally."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.moderation import PROMPT_REFUSED, AuditEvent, Moderation
from bot.settings import load_settings
from bot.store import Store
from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes
from tests.remixworld import World, running_world

REFUSED = "That prompt uses a word or phrase this server does not allow; change it and try again."


async def _with_log(w: World, log_channel: str, *words: str) -> None:
    guild = int(w.discord.guild_id)
    await w.services.store.set_log_channel(guild, int(log_channel))
    for word in words:
        await w.services.store.set_prompt_block(guild, "word", word)


async def _logged(w: World, channel: str, count: int = 1) -> list[dict[str, Any]]:
    """The embeds posted to the log channel, once there are `count` (bounded wait)."""

    def found() -> list[dict[str, Any]] | None:
        embeds = [e for m in w.discord.channel_messages(channel) for e in m.embeds]
        return embeds if len(embeds) >= count else None

    return await w.discord.wait_until(found, 10, "the moderation log")


def _fields(embed: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


async def test_a_blocked_prompt_is_refused_free_and_logged(tmp_path: Path) -> None:
    async with FakeDiscord() as d:
        log = d.add_channel("mod-log")
        async with running_world(tmp_path / "data", discord=d) as w:
            await _with_log(w, log, "gore")
            await w.slash_remix(png_bytes(), prompt="a scene with GORE everywhere")
            await d.wait_until(lambda: REFUSED in w.ephemeral_replies(), 10, "the refusal")
            assert not any("everywhere" in r for r in w.ephemeral_replies())
            assert w.remix.api_requests() == [] and await w.services.store.list_jobs() == []
            [entry] = await _logged(w, log)
            assert entry["title"] == "Prompt refused"
            assert entry["description"] == "a scene with GORE everywhere"
            assert _fields(entry)["Member"] == f"<@{d.alice['id']}> (`{d.alice['id']}`)"
            create = d.calls_to("POST", rf"/channels/{log}/messages")[-1]
            assert create.json["allowed_mentions"]["parse"] == []  # the log pings nobody


async def test_edits_and_rerolls_of_a_now_blocked_prompt_are_refused(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes(), prompt="a red dragon")
        msg = await w.result_message(inter)
        [job] = await w.jobs_final(1)
        await w.services.store.set_prompt_block(int(w.discord.guild_id), "pattern", r"drag(o|0)n")
        click = await w.discord.click(msg.id, f"remix:reroll:{job.id}", user=w.discord.bob)
        assert await w.private_answer(click) == REFUSED
        edit = await w.discord.click(msg.id, f"remix:edit:{job.id}")
        await w.discord.wait_until(lambda: edit.modal, 10, "the Edit modal")
        submit = await w.discord.submit_modal(edit, {"prompt": "a green drag0n"})
        assert await w.private_answer(submit) == REFUSED
        # An edit to an allowed prompt goes through.
        edit = await w.discord.click(msg.id, f"remix:edit:{job.id}")
        await w.discord.wait_until(lambda: edit.modal, 10, "the Edit modal")
        await w.result_message(await w.discord.submit_modal(edit, {"prompt": "a green lizard"}))
        assert len(await w.jobs_final(2)) == 2


async def test_safety_rejections_reach_the_log_channel(tmp_path: Path) -> None:
    async with FakeDiscord() as d:
        log = d.add_channel("mod-log")
        async with running_world(tmp_path / "data", discord=d) as w:
            await _with_log(w, log)
            w.remix.fail_next("422")  # the backend's safety check refused the prompt
            await w.slash_remix(png_bytes(), prompt="something the backend refuses")
            [refused] = await _logged(w, log)
            [job] = await w.jobs_final(1)
            assert refused["title"] == "Backend safety rejection"
            assert refused["description"] == "something the backend refuses"
            assert _fields(refused)["Job"] == f"`{job.id}`"
            # Ideogram answers 422 for its safety check only: reported whatever the wording.
            w.remix.fail_next("422_terse")
            await w.slash_remix(png_bytes(), prompt="refused tersely")
            terse = (await _logged(w, log, 2))[1]
            assert terse["title"] == "Backend safety rejection"
            assert terse["description"] == "refused tersely"
            w.remix.unsafe = {0}  # one of two images withheld by the safety filter
            inter = await w.slash_remix(png_bytes(), num_images=2, prompt="half unsafe")
            await w.result_message(inter)
            withheld = (await _logged(w, log, 3))[2]
            assert "1 image(s) withheld" in _fields(withheld)["Detail"]


async def test_prompts_are_shown_literally_everywhere_members_see_them(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        prompt = f"[free nitro](https://evil.example) **loud** @everyone <@{w.discord.bob['id']}>"
        inter = await w.slash_remix(png_bytes(), prompt=prompt, negative_prompt="[x](https://a.b)")
        msg = await w.result_message(inter)
        shown = msg.embeds[0]["description"]
        assert "[free nitro](" not in shown and "\\[free nitro\\]" in shown
        assert "\\*\\*loud\\*\\*" in shown
        assert "@everyone" not in shown and "@\u200beveryone" in shown
        assert f"<@{w.discord.bob['id']}>" not in shown
        options = {f["name"]: f["value"] for f in msg.embeds[0]["fields"]}["Options"]
        assert "[x](" not in options
        [job] = await w.jobs_final(1)
        listing = await w.discord.slash("jobs")
        text = await w.private_answer(listing)
        assert "[free nitro](" not in text and "@everyone" not in text
        dm = await w.discord.click(msg.id, f"remix:dm:{job.id}")
        await w.private_answer(dm)
        [sent] = w.discord.channel_messages(w.discord.dm_channels[w.discord.alice["id"]])
        assert "[free nitro](" not in json.dumps(sent.embeds)


async def test_a_stop_drops_log_posts_stuck_past_the_grace_with_one_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(
        {"REMIXBOT_BACKEND": "demo", "REMIXBOT_DATA_DIR": str(tmp_path)}, dotenv=None
    )
    async with await Store.from_settings(settings) as store:
        moderation = Moderation(store)
        arrived: list[int] = []

        async def log_channel(event: AuditEvent) -> None:  # user 1's post never gets through
            if event.user_id == 1:
                await asyncio.sleep(60)
            await asyncio.sleep(0.1)
            arrived.append(event.user_id)

        moderation.sink = log_channel
        moderation.report(AuditEvent(PROMPT_REFUSED, 5, 1))
        moderation.report(AuditEvent(PROMPT_REFUSED, 5, 2))
        with caplog.at_level(logging.INFO, logger="bot.moderation"):
            async with asyncio.timeout(5):
                assert await moderation.finish_reports(0.5) == 1
        assert arrived == [2]  # the post that could arrive within the grace did
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("INFO", "stopping: 1 moderation log post(s) not sent within 0.5s were dropped")
        ]
        assert await moderation.finish_reports(0.5) == 0  # nothing left: no wait, no line

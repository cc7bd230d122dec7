"""Finding a job again: /jobs lists a member's recent jobs privately (states, jump links);
/show recreates a job's result and controls in the current channel, with its images while the
bot keeps them, else the controls and a link to the original."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes
from tests.fakeremix import running_fake
from tests.remixworld import running_world


async def test_jobs_lists_a_member_s_recent_jobs_privately(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        done = await w.slash_remix(png_bytes(), prompt="a *bold* cat")
        msg = await w.result_message(done)
        w.remix.fail_next("422")
        await w.slash_remix(png_bytes(), prompt="a refused cat")
        first, second = await w.jobs_final(2)
        listing = await w.discord.slash("jobs")
        text = await w.private_answer(listing)
        lines = text.splitlines()
        assert lines[0].startswith(f"`{second.id}` **failed**")
        assert lines[1].startswith(f"`{first.id}` **delivered**")
        assert "a \\*bold\\* cat" in lines[1]  # the prompt shown as typed, not as markdown
        link = f"https://discord.com/channels/{w.discord.guild_id}/{msg.channel_id}/{msg.id}"
        assert f"[jump]({link})" in lines[1]
        empty = await w.discord.slash("jobs", user=w.discord.bob)
        assert await w.private_answer(empty) == "You have no remixes yet; start one with /remix."


async def test_show_posts_the_job_again_with_working_controls(tmp_path: Path) -> None:
    async with FakeDiscord() as d:
        other = d.add_channel("gallery")
        async with running_world(tmp_path / "data", discord=d) as w:
            inter = await w.slash_remix(png_bytes(), num_images=2)
            original = await w.result_message(inter)
            [job] = await w.jobs_final(1)
            refused = await d.slash("show", {"job": job.id}, user=d.bob, channel_id=other)
            assert await w.private_answer(refused) == (
                "You can show only your own remixes; /jobs lists them."
            )
            shown = await d.slash("show", {"job": job.id}, channel_id=other)
            posted = await w.result_message(shown)
            assert posted.channel_id == other
            assert [a.data for a in posted.attachments] == [a.data for a in original.attachments]
            assert f"remix:vary:{job.id}" in posted.custom_ids()
            assert posted.embeds[0]["title"] == f"Job {job.id}"
            # The shown copy is the job's own message now: its controls and reactions work.
            assert (await w.services.store.job_for_message(int(posted.id))).id == job.id
            before = set(d.messages)
            await d.react(posted.id, "🔁", user=d.bob)
            await d.wait_for_message(lambda m: bool(m.attachments), after=before)
            reroll = (await w.jobs_final(2))[1]
            assert (reroll.kind, reroll.user_id, reroll.channel_id) == (
                "reroll",
                int(d.bob["id"]),
                int(other),
            )
            pick = await d.select(posted.id, f"remix:vary:{job.id}", ["2:subtle"], user=d.bob)
            await w.result_message(pick)
            await w.jobs_final(3)


async def test_show_without_kept_images_gives_the_controls_and_a_link(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        original = await w.result_message(inter)
        [job] = await w.jobs_final(1)
        # Past the retention period the kept images are swept.
        later = datetime.now(UTC) + timedelta(days=w.settings.retention_days + 2)
        for key in await w.services.store.result_keys(job.id):
            path = w.services.store.results.path(key)
            old = (later - timedelta(days=w.settings.retention_days + 1)).timestamp()
            await asyncio.to_thread(os.utime, path, (old, old))
        assert await w.services.store.sweep_inputs(later) >= 1
        shown = await w.discord.slash("show", {"job": job.id})
        posted = await w.discord.wait_until(
            lambda: (m := w.discord.original(shown)) and m.embeds and m, 10, "the shown job"
        )
        assert posted.attachments == []
        link = (
            f"https://discord.com/channels/{w.discord.guild_id}/{original.channel_id}/{original.id}"
        )
        fields = {f["name"]: f["value"] for f in posted.embeds[0]["fields"]}
        assert fields["Original"] == f"[Jump to it]({link})"
        assert "no longer kept" in fields["Note"]
        assert f"remix:reroll:{job.id}" in posted.custom_ids()
        # Vary needs the images: it says so, privately would be too late (after the defer).
        pick = await w.discord.select(posted.id, f"remix:vary:{job.id}", ["1:subtle"])
        assert "no longer stored" in await w.refusal(pick)


async def test_show_works_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        async with running_world(data, discord=d, remix=r) as w:
            inter = await w.slash_remix(png_bytes())
            original = await w.result_message(inter)
            [job] = await w.jobs_final(1)
        async with running_world(data, discord=d, remix=r) as w2:
            shown = await d.slash("show", {"job": job.id})
            posted = await w2.result_message(shown)
            assert posted.attachments[0].data == original.attachments[0].data
            listing = await d.slash("jobs")
            assert f"`{job.id}` **delivered**" in await w2.private_answer(listing)

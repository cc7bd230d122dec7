"""/remix and the controls in a member's DM with the bot, under their DM quota (a scope of its
own, apart from every server's)."""

from __future__ import annotations

from pathlib import Path

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes
from tests.fakeremix import running_fake
from tests.remixworld import running_world


async def test_remix_and_its_controls_work_in_a_dm(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes(), dm=True, num_images=2)
        msg = await w.result_message(inter)
        dm = w.discord.dm_channels[w.discord.alice["id"]]
        assert msg.channel_id == dm
        [job] = await w.jobs_final(1)
        assert (job.guild_id, job.channel_id) == (None, int(dm))
        assert (await w.services.store.quota_status(job.user_id, None)).used == 2
        assert (await w.services.store.quota_status(job.user_id, int(w.discord.guild_id))).used == 0
        click = await w.discord.click(msg.id, f"remix:reroll:{job.id}")
        await w.result_message(click)
        pick = await w.discord.select(msg.id, f"remix:vary:{job.id}", ["2:strong"])
        await w.result_message(pick)
        edit = await w.discord.click(msg.id, f"remix:edit:{job.id}")
        await w.discord.wait_until(lambda: edit.modal, 10, "the Edit modal")
        await w.result_message(await w.discord.submit_modal(edit, {"prompt": "a dm fox"}))
        before = set(w.discord.messages)
        w.services.remix.repeats._seen.clear()  # past the double-tap window of the Reroll click
        await w.discord.react(msg.id, "🔁")
        reply = await w.discord.wait_for_message(lambda m: bool(m.attachments), after=before)
        assert reply.channel_id == dm
        jobs = await w.jobs_final(5)
        assert {(j.guild_id, j.channel_id) for j in jobs} == {(None, int(dm))}
        assert (
            await w.services.store.quota_status(job.user_id, None)
        ).used == 5 * 2  # every job asked for two images
        await w.discord.click(msg.id, f"remix:delete:{job.id}")
        await w.discord.wait_until(lambda: w.discord.messages[msg.id].deleted, 10, "the delete")
        assert await w.books_balance() == []


async def test_the_dm_quota_is_its_own(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_DEFAULT_LIMIT="1") as w:
        await w.result_message(await w.slash_remix(png_bytes(), dm=True))
        await w.slash_remix(png_bytes(), dm=True)
        await w.discord.wait_until(
            lambda: any(r.startswith("You have 0 of 1 image left") for r in w.ephemeral_replies()),
            10,
            "the DM refusal",
        )
        # The server's quota is untouched by what was spent in DMs.
        await w.result_message(await w.slash_remix(png_bytes()))
        jobs = await w.jobs_final(2)
        assert [j.guild_id for j in jobs] == [None, int(w.discord.guild_id)]


async def test_dm_controls_work_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        async with running_world(data, discord=d, remix=r) as w:
            msg = await w.result_message(await w.slash_remix(png_bytes(), dm=True))
            [job] = await w.jobs_final(1)
        async with running_world(data, discord=d, remix=r) as w2:
            await w2.result_message(await d.click(msg.id, f"remix:reroll:{job.id}"))
            _, reroll = await w2.jobs_final(2)
            assert (reroll.kind, reroll.guild_id) == ("reroll", None)
            # Bob cannot reach Alice's DM job from his own DM (another channel: nothing happens).
            bob_dm = d.dm_channel(d.bob)
            forged = await d.post_message("x", user=d.bob, channel_id=bob_dm)
            forged.components = msg.components
            click = await d.click(forged.id, f"remix:reroll:{job.id}", user=d.bob)
            assert await w2.acknowledged(click) == 6
            assert len(await w2.services.store.list_jobs()) == 2

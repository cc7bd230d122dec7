"""The result controls through the fake Discord, as Discord sends them: Edit (a modal), Vary (a
select), Delete (button and ❌), DM (button and ✉️); by the right member and the wrong one,
before and after a restart; every job charged to whoever took it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes
from tests.fakediscord.world import MANAGE_MESSAGES
from tests.fakeremix import running_fake
from tests.remixworld import World, running_world


async def _result(w: World, **options: Any) -> tuple[Any, Any]:
    """Alice's /remix, posted: the result message and its job."""
    inter = await w.slash_remix(png_bytes(240, 160, (200, 40, 40)), **options)
    msg = await w.result_message(inter)
    [job] = await w.jobs_final(1)
    return msg, job


def _pixel(data: bytes, where: tuple[float, float]) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return image.getpixel((int(image.width * where[0]), int(image.height * where[1])))


def _close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 16) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


async def test_a_result_carries_every_control(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        msg, job = await _result(w, num_images=3)
        assert msg.custom_ids() == [
            f"remix:reroll:{job.id}",
            f"remix:edit:{job.id}",
            f"remix:dm:{job.id}",
            f"remix:delete:{job.id}",
            f"remix:vary:{job.id}",
        ]
        vary = msg.component(f"remix:vary:{job.id}")
        assert [o["value"] for o in vary["options"]] == [
            f"{n}:{s}" for n in (1, 2, 3) for s in ("subtle", "strong")
        ]
        # The posted images are kept with the job for the retention period.
        kept = await w.services.store.result_images(job.id)
        assert kept == [a.data for a in msg.attachments]


async def test_edit_opens_the_job_prefilled_and_runs_on_the_same_input(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        msg, first = await _result(w, negative_prompt="blurry", image_weight=70)
        sent_first = w.remix.last().files["image"][0].data
        click = await w.discord.click(msg.id, f"remix:edit:{first.id}", user=w.discord.bob)
        await w.discord.wait_until(lambda: click.modal, 10, "the Edit modal")
        fields = {
            c["custom_id"]: c.get("value")
            for row in click.modal["components"]
            for c in row["components"]
        }
        assert fields == {
            "prompt": "a watercolor cat",
            "negative_prompt": "blurry",
            "image_weight": "70",
        }
        submit = await w.discord.submit_modal(click, {"prompt": "an oil painting of a cat"})
        await w.result_message(submit)
        _, edited = await w.jobs_final(2)
        assert (edited.user_id, edited.parent_job_id) == (int(w.discord.bob["id"]), first.id)
        assert edited.input_key == first.input_key  # the same stored input, byte for byte
        sent = w.remix.last()
        assert sent.field("prompt") == "an oil painting of a cat"
        assert (sent.field("negative_prompt"), sent.field("image_weight")) == ("blurry", "70")
        assert sent.files["image"][0].data == sent_first
        bob = await w.services.store.quota_status(edited.user_id, edited.guild_id)
        alice = await w.services.store.quota_status(first.user_id, first.guild_id)
        assert (bob.used, alice.used) == (1, 1)  # charged to whoever pressed Edit
        assert await w.books_balance() == []


async def test_a_bad_edit_is_refused_privately_and_costs_nothing(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        msg, first = await _result(w)
        click = await w.discord.click(msg.id, f"remix:edit:{first.id}")
        await w.discord.wait_until(lambda: click.modal, 10, "the Edit modal")
        submit = await w.discord.submit_modal(click, {"image_weight": "lots"})
        answer = await w.private_answer(submit)
        assert answer == "image_weight must be a whole number from 1 to 100, not 'lots'."
        assert len(w.remix.api_requests()) == 1
        assert len(await w.services.store.list_jobs()) == 1


async def test_vary_takes_the_chosen_result_as_the_input(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        msg, first = await _result(w, num_images=2, image_weight=60)
        second = msg.attachments[1].data
        pick = await w.discord.select(
            msg.id, f"remix:vary:{first.id}", ["2:strong"], user=w.discord.bob
        )
        await w.result_message(pick)
        _, varied = await w.jobs_final(2)
        assert (varied.user_id, varied.parent_job_id) == (int(w.discord.bob["id"]), first.id)
        assert varied.input_key != first.input_key
        sent = w.remix.last()
        assert sent.field("prompt") == "a watercolor cat"
        assert sent.field("image_weight") == "35"  # Strong strays from the image
        assert sent.field("num_images") == "2"
        image = sent.files["image"][0].data
        for spot in ((0.25, 0.25), (0.75, 0.75)):  # the two colour blocks of result 2
            assert _close(_pixel(image, spot), _pixel(second, spot))
        # Subtle stays close to the image.
        pick = await w.discord.select(msg.id, f"remix:vary:{first.id}", ["1:subtle"])
        await w.result_message(pick)
        await w.jobs_final(3)
        assert w.remix.last().field("image_weight") == "85"
        assert await w.books_balance() == []


async def test_delete_is_for_the_requester_and_message_managers(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        msg, job = await _result(w)
        refused = await w.discord.click(msg.id, f"remix:delete:{job.id}", user=w.discord.bob)
        assert await w.private_answer(refused) == (
            "Only the member who asked for this remix, or someone with Manage Messages, "
            "can delete it."
        )
        assert not w.discord.messages[msg.id].deleted
        await w.discord.give_role(w.discord.bob, "Mods", permissions=MANAGE_MESSAGES)
        deleted = await w.discord.click(msg.id, f"remix:delete:{job.id}", user=w.discord.bob)
        await w.discord.wait_until(lambda: w.discord.messages[msg.id].deleted, 10, "the delete")
        assert deleted.response_type == 6
        # The books are untouched: the job stays delivered and charged.
        after = await w.services.store.find_job(job.id)
        assert (after.state, after.images_delivered) == ("delivered", 1)
        assert (await w.services.store.ledger_balance(job.id)).charged == 1


async def test_a_cross_reaction_deletes_for_the_same_people(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        msg, job = await _result(w)
        await w.discord.react(msg.id, "❌", user=w.discord.bob)  # not theirs: nothing happens
        await w.discord.react(msg.id, "🔁", user=w.discord.owner)  # something the bot answers
        await w.jobs_final(2)
        assert not w.discord.messages[msg.id].deleted
        await w.discord.react(msg.id, "❌")  # Alice asked for it
        await w.discord.wait_until(lambda: w.discord.messages[msg.id].deleted, 10, "the delete")
        assert (await w.services.store.find_job(job.id)).state == "delivered"


async def test_dm_sends_the_images_and_details_or_says_dms_are_closed(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        msg, job = await _result(w, num_images=2)
        click = await w.discord.click(msg.id, f"remix:dm:{job.id}", user=w.discord.bob)
        assert await w.private_answer(click) == "✉️ Sent to your DMs."
        dm = w.discord.dm_channels[w.discord.bob["id"]]
        [sent] = w.discord.channel_messages(dm)
        assert [a.data for a in sent.attachments] == [a.data for a in msg.attachments]
        assert sent.embeds[0]["title"] == f"Job {job.id}"
        assert "a watercolor cat" in sent.embeds[0]["description"]
        assert sent.components == []  # details and images only
        w.discord.dms_closed.add(w.discord.bob["id"])
        closed = await w.discord.click(msg.id, f"remix:dm:{job.id}", user=w.discord.bob)
        assert (await w.private_answer(closed)).startswith("I can't DM you: your DMs are closed")
        # ✉️ as a reaction does the same (a reaction has no private answer to give).
        await w.discord.react(msg.id, "✉️")
        alice_dm = await w.discord.wait_until(
            lambda: w.discord.dm_channels.get(w.discord.alice["id"]), 10, "Alice's DM"
        )
        got = await w.discord.wait_until(lambda: w.discord.channel_messages(alice_dm), 10, "the DM")
        assert len(got[0].attachments) == 2
        assert len(w.remix.api_requests()) == 1  # nothing was generated or charged for DMs


async def test_every_control_works_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        async with running_world(data, discord=d, remix=r) as w:
            msg, first = await _result(w, num_images=2)
        # A new process: nothing of the first lives in memory; every control reads the store.
        async with running_world(data, discord=d, remix=r) as w2:
            edit = await d.click(msg.id, f"remix:edit:{first.id}", user=d.bob)
            await d.wait_until(lambda: edit.modal, 10, "the Edit modal")
            await w2.result_message(await d.submit_modal(edit, {"prompt": "a fox"}))
            pick = await d.select(msg.id, f"remix:vary:{first.id}", ["1:subtle"], user=d.bob)
            await w2.result_message(pick)
            dm = await d.click(msg.id, f"remix:dm:{first.id}", user=d.bob)
            assert await w2.private_answer(dm) == "✉️ Sent to your DMs."
            [sent] = d.channel_messages(d.dm_channels[d.bob["id"]])
            assert len(sent.attachments) == 2
            jobs = await w2.jobs_final(3)
            assert [(j.user_id, j.parent_job_id) for j in jobs[1:]] == [
                (int(d.bob["id"]), first.id)
            ] * 2
            refused = await d.click(msg.id, f"remix:delete:{first.id}", user=d.bob)
            assert (await w2.private_answer(refused)).startswith("Only the member who asked")
            await d.click(msg.id, f"remix:delete:{first.id}")
            await d.wait_until(lambda: d.messages[msg.id].deleted, 10, "the delete")
            assert await w2.books_balance() == []


async def test_a_control_on_another_channel_s_message_does_nothing(tmp_path: Path) -> None:
    async with FakeDiscord() as d:
        other = d.add_channel("elsewhere")
        async with running_world(tmp_path / "data", discord=d) as w:
            msg, job = await _result(w)
            forged = await d.post_message("look", channel_id=other)
            forged.components = [{"type": 1, "components": msg.components[0]["components"]}]
            for custom_id in (
                f"remix:delete:{job.id}",
                f"remix:reroll:{job.id}",
                f"remix:dm:{job.id}",
            ):
                click = await d.click(forged.id, custom_id, user=d.bob)
                assert await w.acknowledged(click) == 6
            assert not d.messages[msg.id].deleted
            assert len(await w.services.store.list_jobs()) == 1
            assert d.bob["id"] not in d.dm_channels

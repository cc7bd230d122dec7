"""Apps → "Remix this image" on any message with an image (the bot's own results included): a
modal for the prompt, negative prompt and image weight, a select when the message has several
images, and then the same path, checks and charges as /remix."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes
from tests.fakeremix import running_fake
from tests.remixworld import World, running_world

MENU = "Remix this image"


def _colour(data: bytes) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return image.getpixel((image.width // 2, image.height // 2))


async def _posted_by_bob(w: World, *colours: tuple[int, int, int]) -> Any:
    """Bob posts a message with one image attachment per colour."""
    atts = [
        w.discord.upload_attachment(f"pic{n}.png", png_bytes(200, 200, colour))
        for n, colour in enumerate(colours)
    ]
    return await w.discord.post_message("look at this", attachments=atts, user=w.discord.bob)


async def test_one_image_opens_the_modal_and_runs_as_remix_does(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        msg = await _posted_by_bob(w, (10, 200, 30))
        menu = await w.discord.message_command(MENU, msg.id)
        await w.discord.wait_until(lambda: menu.modal, 10, "the modal")
        assert menu.modal["custom_id"] == f"remix:remixmodal:{msg.id}:1"
        submit = await w.discord.submit_modal(
            menu, {"prompt": "a neon city", "negative_prompt": "fog", "image_weight": "80"}
        )
        await w.result_message(submit)
        [job] = await w.jobs_final(1)
        assert (job.user_id, job.kind, job.parent_job_id) == (
            int(w.discord.alice["id"]),
            "remix",
            None,
        )
        sent = w.remix.last()
        assert (sent.field("prompt"), sent.field("negative_prompt")) == ("a neon city", "fog")
        assert sent.field("image_weight") == "80"
        got = _colour(sent.files["image"][0].data)
        assert all(abs(a - b) < 8 for a, b in zip(got, (10, 200, 30), strict=True))
        status = await w.services.store.quota_status(job.user_id, job.guild_id)
        assert status.used == 1 and await w.books_balance() == []


async def test_several_images_ask_which_one_first(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        embedded = w.discord.upload_attachment("embed.png", png_bytes(120, 120, (240, 240, 10)))
        proxy = w.discord.attachment_json(embedded)["proxy_url"]
        atts = [
            w.discord.upload_attachment(f"{n}.png", png_bytes(200, 200, c))
            for n, c in enumerate(((200, 10, 10), (10, 10, 200)))
        ]
        msg = await w.discord.post_message(
            "two and a link preview",
            attachments=atts,
            embeds=[
                {"type": "rich", "image": {"url": "https://example.com/a.png", "proxy_url": proxy}}
            ],
            user=w.discord.bob,
        )
        menu = await w.discord.message_command(MENU, msg.id)
        question = await w.discord.wait_until(
            lambda: (m := w.discord.original(menu)) and m.components and m, 10, "the select"
        )
        assert question.ephemeral
        select = question.component(f"remix:pick:{msg.id}")
        assert [o["value"] for o in select["options"]] == ["1", "2", "3"]
        pick = await w.discord.select(question.id, f"remix:pick:{msg.id}", ["3"])
        await w.discord.wait_until(lambda: pick.modal, 10, "the modal")
        submit = await w.discord.submit_modal(pick, {"prompt": "sunflowers"})
        await w.result_message(submit)
        got = _colour(w.remix.last().files["image"][0].data)  # the embed's image
        assert all(abs(a - b) < 8 for a, b in zip(got, (240, 240, 10), strict=True))


async def test_a_result_of_the_bot_can_be_remixed_again(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        result = await w.result_message(inter)
        menu = await w.discord.message_command(MENU, result.id, user=w.discord.bob)
        await w.discord.wait_until(lambda: menu.modal, 10, "the modal")
        await w.result_message(await w.discord.submit_modal(menu, {"prompt": "again"}))
        _, second = await w.jobs_final(2)
        assert second.user_id == int(w.discord.bob["id"])
        assert (
            w.remix.last().files["image"][0].data
            != w.remix.api_requests()[0].files["image"][0].data
        )


async def test_refusals_come_privately_and_cost_nothing(tmp_path: Path) -> None:
    async with running_world(
        tmp_path / "data", REMIXBOT_DEFAULT_LIMIT="1", REMIXBOT_MAX_INPUT_BYTES="1000000"
    ) as w:
        plain = await w.discord.post_message("no picture here", user=w.discord.bob)
        menu = await w.discord.message_command(MENU, plain.id)
        assert (await w.private_answer(menu)).startswith("That message has no image I can remix")
        # Over the size limit (Discord says how big an attachment is): before any download.
        noisy = Image.effect_noise((900, 900), 100).convert("RGB")
        buf = io.BytesIO()
        noisy.save(buf, "PNG")
        big = w.discord.upload_attachment("big.png", buf.getvalue())
        msg = await w.discord.post_message("huge", attachments=[big], user=w.discord.bob)
        menu = await w.discord.message_command(MENU, msg.id)
        await w.discord.wait_until(lambda: menu.modal, 10, "the modal")
        submit = await w.discord.submit_modal(menu, {"prompt": "x"})
        assert "the limit is 1 MB" in await w.private_answer(submit)
        # Out of quota: refused before the modal opens.
        await w.services.store.block(int(w.discord.alice["id"]), "testing", guild_id=None)
        small = await _posted_by_bob(w, (1, 2, 3))
        menu = await w.discord.message_command(MENU, small.id)
        assert await w.private_answer(menu) == "You are blocked from remixing: testing."
        assert menu.modal is None
        assert w.remix.api_requests() == []
        assert await w.services.store.list_jobs() == []


async def test_a_modal_opened_before_a_restart_is_submitted_after_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        async with running_world(data, discord=d, remix=r) as w:
            msg = await _posted_by_bob(w, (90, 20, 160))
            menu = await d.message_command(MENU, msg.id)
            await d.wait_until(lambda: menu.modal, 10, "the modal")
        async with running_world(data, discord=d, remix=r) as w2:
            submit = await d.submit_modal(menu, {"prompt": "after the restart"})
            await w2.result_message(submit)
            got = _colour(r.last().files["image"][0].data)
            assert all(abs(a - b) < 8 for a, b in zip(got, (90, 20, 160), strict=True))
            [job] = await w2.jobs_final(1)
            assert job.state == "delivered"

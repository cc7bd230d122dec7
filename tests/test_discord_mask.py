"""An edit's mask through Discord: `/remix mask:` on the reseller's edit endpoint, the mask at the
image's exact size, stored with the job so a reroll edits the same region; refused, free, on a
backend that cannot take one."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from tests.fakediscord.helpers import png_bytes
from tests.remixworld import running_world


def mask_png(width: int, height: int) -> bytes:
    """White (keep) with a black square (change) in the middle."""
    im = Image.new("L", (width, height), 255)
    im.paste(0, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


async def test_a_mask_is_sent_at_the_image_size_and_kept_for_rerolls(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_BACKEND="ideogram-edit") as w:
        mask = w.discord.upload_attachment("mask.png", mask_png(400, 300))
        inter = await w.slash_remix(png_bytes(800, 600), prompt="a red hat", mask=mask)
        result = await w.result_message(inter, within=20)
        sent = w.remix.last()
        image, sent_mask = sent.files["image_file"][0], sent.files["mask"][0]
        with Image.open(io.BytesIO(image.data)) as a, Image.open(io.BytesIO(sent_mask.data)) as m:
            assert a.size == m.size
            hist = m.convert("L").histogram()
            assert hist[0] and hist[255] and not sum(hist[1:255])  # pure black and white
        [job] = await w.jobs_final(1)
        assert job.mask_key
        # A reroll edits the same region: the stored mask, byte for byte.
        await w.discord.click(result.id, f"remix:reroll:{job.id}", user=w.discord.bob)
        await w.discord.wait_until(lambda: len(w.remix.api_requests()) == 2, 20, "the reroll")
        assert w.remix.last().files["mask"][0].data == sent_mask.data


async def test_a_mask_on_a_backend_without_edits_is_refused_privately(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        mask = w.discord.upload_attachment("mask.png", mask_png(64, 48))
        await w.slash_remix(png_bytes(), mask=mask)
        await w.discord.wait_until(lambda: w.ephemeral_replies(), 10, "an ephemeral reply")
        [reply] = w.ephemeral_replies()
        assert "mask" in reply
        assert not w.remix.api_requests()

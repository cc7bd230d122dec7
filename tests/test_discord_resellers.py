"""The reseller shapes and the converted input formats, end to end through the fake Discord: what
a new admin configures from the README gets images in Discord."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.remixworld import running_world


def photo(fmt: str, size: tuple[int, int] = (300, 200), **save: object) -> bytes:
    """A small picture saved as `fmt` (with alpha for formats that keep it)."""
    mode = "RGBA" if fmt in ("AVIF", "PNG") else "RGB"
    im = Image.new(mode, size, (30, 140, 200, 255) if mode == "RGBA" else (30, 140, 200))
    im.paste((220, 60, 40) if mode == "RGB" else (220, 60, 40, 128), (0, 0, size[0] // 2, size[1]))
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


async def test_the_async_reseller_with_the_legacy_body_gets_images_in_discord(
    tmp_path: Path,
) -> None:
    """README's task-proxy block: submit at /ideogram/remix with the legacy body, Bearer."""
    env = {
        "REMIXBOT_BACKEND": "task-proxy",
        "REMIXBOT_TASK_SUBMIT_PATH": "/ideogram/remix",
        "REMIXBOT_AUTH_SCHEME": "bearer",
    }
    async with running_world(tmp_path / "data", **env) as w:
        inter = await w.slash_remix(photo("PNG"), num_images=2)
        result = await w.result_message(inter, within=20)
        assert len(result.attachments) == 2
        submit = next(r for r in w.remix.api_requests() if r.path == "/ideogram/remix")
        assert set(submit.files) == {"image_file"}
        assert json.loads(submit.field("image_request") or "{}")["num_images"] == 2
        assert submit.headers.get("Authorization", "").startswith("Bearer ")
        [job] = await w.jobs_final(1)
        assert job.state == "delivered" and job.backend_ref
        assert await w.books_balance() == []


@pytest.mark.parametrize(
    ("fmt", "save", "converted"),
    [
        ("BMP", {}, "BMP"),
        ("TIFF", {"compression": "tiff_lzw"}, "TIFF"),
        ("AVIF", {}, "AVIF"),
    ],
)
async def test_members_uploads_in_other_formats_are_converted_and_remixed(
    tmp_path: Path, fmt: str, save: dict[str, object], converted: str
) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(photo(fmt, **save), filename=f"upload.{fmt.lower()}")
        result = await w.result_message(inter, within=20)
        assert result.attachments
        sent = w.remix.last().files["image"][0]
        assert sent.format in ("JPEG", "PNG", "WEBP")  # what the backend accepts
        [job] = await w.jobs_final(1)
        assert job.state == "delivered"
        embed_text = json.dumps(result.embeds)
        assert f"converted from {converted}" in embed_text  # the member is told what was done

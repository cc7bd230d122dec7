"""REMIXBOT_BACKEND=demo: local, seeded, labelled Pillow variations; no key, no network."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image, ImageChops

from bot.errors import InvalidRequest
from bot.remix.backends import DemoBackend, make_backend
from bot.remix.request import RemixRequest
from bot.settings import load_settings
from tests.fakediscord.helpers import png_bytes
from tests.fakeremix.helpers import encoded
from tests.remixworld import running_world


def _demo_settings(tmp_path: Path) -> object:
    return load_settings(
        {"REMIXBOT_BACKEND": "demo", "REMIXBOT_DATA_DIR": str(tmp_path)},
        dotenv=None,
        require=("api_key",),  # a command that needs the key runs without one on the demo
    )


def _differ(a: bytes, b: bytes) -> bool:
    with Image.open(io.BytesIO(a)) as x, Image.open(io.BytesIO(b)) as y:
        if x.size != y.size:
            return True
        return ImageChops.difference(x.convert("RGB"), y.convert("RGB")).getbbox() is not None


async def test_demo_needs_no_key_and_makes_seeded_labelled_variations(tmp_path: Path) -> None:
    settings = _demo_settings(tmp_path)
    backend = make_backend(settings, None)  # type: ignore[arg-type]  # it never opens a session
    assert isinstance(backend, DemoBackend)
    image = encoded("PNG", (300, 200))
    request = RemixRequest(prompt="a cat", num_images=2, seed=41)
    first = await backend.remix(request, image, [])
    again = await backend.remix(request, image, [])
    other = await backend.remix(request.with_seed(977), image, [])
    assert [i.seed for i in first.images] == [41, 42]
    assert all(i.url is None and i.data and i.deliverable for i in first.images)
    assert all(i.prompt == "demo backend: a cat" for i in first.images)
    assert first.backend == "demo"
    # Same seed, same picture; another seed (a reroll) and the second image differ.
    assert [i.data for i in first.images] == [i.data for i in again.images]
    assert _differ(first.images[0].data, other.images[0].data)  # type: ignore[arg-type]
    assert _differ(first.images[0].data, first.images[1].data)  # type: ignore[arg-type]
    # A variation of the input, not a copy of it.
    assert _differ(first.images[0].data, image.data)  # type: ignore[arg-type]


async def test_demo_refuses_a_mask_in_one_sentence(tmp_path: Path) -> None:
    backend = make_backend(_demo_settings(tmp_path), None)  # type: ignore[arg-type]
    mask = encoded("PNG", (300, 200))
    try:
        await backend.remix(RemixRequest(prompt="x"), encoded("PNG", (300, 200)), [], mask=mask)
    except InvalidRequest as exc:
        assert "demo" in str(exc) and "mask" in str(exc)
    else:
        raise AssertionError("a mask was accepted")


async def test_demo_backend_through_discord_says_so_and_rerolls_differ(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_BACKEND="demo", REMIXBOT_API_KEY="") as w:
        inter = await w.slash_remix(png_bytes(320, 200), num_images=1)
        msg = await w.result_message(inter)
        embed = json.dumps(msg.embeds)
        assert "demo backend" in embed
        assert len(msg.attachments) == 1
        [first] = await w.jobs_final(1)
        assert (first.state, first.backend) == ("delivered", "demo")
        click = await w.discord.click(msg.id, f"remix:reroll:{first.id}", user=w.discord.bob)
        again = await w.result_message(click)
        assert "demo backend" in json.dumps(again.embeds)
        assert _differ(msg.attachments[0].data, again.attachments[0].data)
        assert w.remix.api_requests() == []  # nothing went to any backend
        assert await w.books_balance() == []

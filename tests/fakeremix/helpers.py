"""Helpers for tests that talk to the fake: settings pointing at it, real input images."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from bot.media import EncodedImage
from bot.settings import Settings, load_settings
from tests.fakeremix.server import API_KEY, FakeRemix


def fake_env(fake: FakeRemix, backend: str = "ideogram", **extra: str) -> dict[str, str]:
    """Environment variables that point the bot at the fake (127.0.0.1 trusted for downloads)."""
    env = {
        "REMIXBOT_BACKEND": backend,
        "REMIXBOT_BACKEND_URL": fake.base_url,
        "REMIXBOT_API_KEY": API_KEY,
        "REMIXBOT_TRUSTED_HOSTS": "127.0.0.1",
        "REMIXBOT_BACKEND_TIMEOUT": "5",
        "REMIXBOT_DOWNLOAD_TIMEOUT": "5",
        "REMIXBOT_TASK_MAX_WAIT": "10",
    }
    env.update(extra)
    return env


def fake_settings(
    fake: FakeRemix, backend: str = "ideogram", overrides: dict[str, Any] | None = None, **env: str
) -> Settings:
    """Validated settings for `backend` against the fake."""
    return load_settings(fake_env(fake, backend, **env), dotenv=None, overrides=overrides)


def encoded(fmt: str = "PNG", size: tuple[int, int] = (96, 64), color: int = 3) -> EncodedImage:
    """A real input image made with Pillow."""
    im = Image.new("RGB", size, (color * 40 % 256, 120, 200))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return EncodedImage(data=buf.getvalue(), format=fmt, width=size[0], height=size[1])

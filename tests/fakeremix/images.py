"""Real images for the fake server, made with Pillow."""

from __future__ import annotations

import io

from PIL import Image


def make_image(fmt: str = "PNG", size: tuple[int, int] = (64, 64), seed: int = 1) -> bytes:
    """A small real image in `fmt` (PNG, JPEG or WEBP) whose colour depends on `seed`."""
    color = ((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256)
    im = Image.new("RGB", size, color)
    # A second colour block so the image is not trivially uniform.
    im.paste((255 - color[0], color[2], color[1]), (0, 0, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

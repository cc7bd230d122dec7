"""Real images for the fake server, made with Pillow."""

from __future__ import annotations

import functools
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


@functools.cache
def photo_like(fmt: str, size: tuple[int, int], variant: int = 0) -> bytes:
    """A photo-sized image with smooth gradients and grain, so its encoded size and its decoding
    cost are those of a real result (cached: the fake serves many)."""
    width, height = size
    gradient = Image.linear_gradient("L").resize((width, height))
    grain = Image.effect_noise((width, height), 40 + variant * 5)
    im = Image.merge("RGB", (gradient, grain, gradient.rotate(90).resize((width, height))))
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()

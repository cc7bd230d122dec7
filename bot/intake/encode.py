"""Encode a prepared picture, metadata-free, under a byte limit: quality steps, then downscale."""

from __future__ import annotations

import tempfile

from PIL import Image

from bot.errors import InvalidImage

JPEG_QUALITIES = (90, 85, 80, 75, 70, 60)
WEBP_QUALITIES = (90, 80, 70, 60)
DOWNSCALE_STEP = 0.75
MAX_DOWNSCALES = 8
# PNG level 3 is ~3x faster than the default 6 for ~5% more bytes; only transparent inputs use it.
PNG_LEVEL = 3


def _save(im: Image.Image, fmt: str, quality: int | None) -> bytes:
    """Save with no metadata at all: info is cleared so nothing is carried over (comment, ICC, dpi)."""
    im.info = {}
    # Into an unnamed temporary file, not io.BytesIO: Pillow lets the interpreter lock go while it
    # encodes to a file descriptor, and holds it while it encodes into memory, which kept the
    # event loop waiting while intake encoded (docs/benchmarks.md, case d).
    with tempfile.TemporaryFile() as buf:
        if fmt == "JPEG":
            im.save(buf, "JPEG", quality=quality)
        elif fmt == "WEBP":
            im.save(buf, "WEBP", quality=quality, method=4)
        else:
            im.save(buf, "PNG", compress_level=PNG_LEVEL)
        buf.seek(0)
        return buf.read()


def _plan(alpha: bool) -> list[tuple[str, int | None]]:
    """Formats and qualities to try, best first."""
    if alpha:
        return [("PNG", None)] + [("WEBP", q) for q in WEBP_QUALITIES]
    return [("JPEG", q) for q in JPEG_QUALITIES]


def encode_under(
    im: Image.Image, max_bytes: int, *, alpha: bool
) -> tuple[bytes, str, Image.Image, list[str]]:
    """Encode as JPEG (PNG then WebP if alpha) strictly under max_bytes; return bytes, format,
    the image actually encoded (maybe smaller) and notes on what it took."""
    notes: list[str] = []
    current = im
    first = _plan(alpha)[0]
    limit = f"{max_bytes / 1e6:g} MB"
    for attempt in range(MAX_DOWNSCALES + 1):
        # After the first round only the smallest settings are worth trying on a smaller image.
        plan = _plan(alpha) if attempt == 0 else _plan(alpha)[-1:]
        for fmt, quality in plan:
            data = _save(current, fmt, quality)
            if len(data) >= max_bytes:
                continue
            if (fmt, quality) != first:
                notes.append(f"saved as {fmt} quality {quality} to fit {limit}")
            if attempt:
                notes.append(f"downscaled further to {current.width}x{current.height} to fit")
            return data, fmt, current, notes
        w, h = current.size
        if max(w, h) <= 16:
            break
        size = (max(1, round(w * DOWNSCALE_STEP)), max(1, round(h * DOWNSCALE_STEP)))
        current = current.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    raise InvalidImage(f"That image cannot be made smaller than {max_bytes / 1e6:g} MB.")

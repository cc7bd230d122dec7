"""A progressive JPEG with thousands of repeated scans is refused before any decoding."""

from __future__ import annotations

import io
import struct
import time

import pytest
from PIL import Image

from bot.errors import InvalidImage
from bot.intake import IntakeLimits, prepare


def _progressive(size: int = 512) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (120, 30, 200)).save(buf, "JPEG", progressive=True, quality=90)
    return buf.getvalue()


def _with_repeated_last_scan(data: bytes, times: int) -> bytes:
    """The same JPEG with its last (Huffman table +) scan segment repeated ``times`` times."""
    i, segments = 2, []
    while i < len(data):
        marker = data[i + 1]
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        end = i + 2 + length
        if marker == 0xDA:  # entropy-coded data runs to the next real marker
            end = data.index(b"\xff", end)
            while data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end = data.index(b"\xff", end + 2)
        segments.append((marker, data[i:end]))
        i = end
    last = max(n for n, (m, _) in enumerate(segments) if m == 0xDA)
    repeat = (segments[last - 1][1] if segments[last - 1][0] == 0xC4 else b"") + segments[last][1]
    body = b"".join(s for _, s in segments)
    return b"\xff\xd8" + body + repeat * times + b"\xff\xd9"


def test_many_scans_are_refused_quickly() -> None:
    bomb = _with_repeated_last_scan(_progressive(), 5000)
    start = time.perf_counter()
    with pytest.raises(InvalidImage) as info:
        prepare(bomb, aspect_ratio=None, limits=IntakeLimits())
    assert time.perf_counter() - start < 1.0  # refused from the bytes, not after decoding
    assert str(info.value).startswith("That JPEG has 50")
    assert "scans; the limit is 100." in str(info.value)


def test_ordinary_progressive_jpegs_still_pass() -> None:
    prepared = prepare(_progressive(), aspect_ratio=None, limits=IntakeLimits())
    assert prepared.image.width == 512
    # A few repeats stay under the limit and decode normally.
    prepared = prepare(
        _with_repeated_last_scan(_progressive(), 20), aspect_ratio=None, limits=IntakeLimits()
    )
    assert prepared.image.height == 512


def test_the_scan_limit_counts_every_marker() -> None:
    from bot.intake.formats import check_jpeg_scans

    data = _with_repeated_last_scan(_progressive(), 3)
    scans = data.count(b"\xff\xda")
    check_jpeg_scans(data, limit=scans)  # exactly at the limit: accepted
    with pytest.raises(InvalidImage, match=f"has {scans} scans; the limit is {scans - 1}"):
        check_jpeg_scans(data, limit=scans - 1)

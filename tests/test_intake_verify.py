"""Downloaded results are decoded before they are posted: damaged or oversized ones are refused."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from bot.errors import InvalidImage
from bot.intake import ImagePool
from bot.intake.verify import RESULT_MAX_PIXELS, check_result
from tests.fakeremix.images import make_image


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_whole_images_pass_and_cut_ones_do_not(tmp_path: Path, fmt: str) -> None:
    data = make_image(fmt, size=(320, 200), seed=5)
    assert check_result(_write(tmp_path, "ok", data)) == (320, 200)
    with pytest.raises(InvalidImage, match="damaged or truncated"):
        check_result(_write(tmp_path, "cut", data[: len(data) // 2]))


def test_large_noisy_png_and_webp_pass(tmp_path: Path) -> None:
    # Megabytes of compressed data contain FF DA by chance: that is a JPEG marker only in a JPEG.
    im = Image.frombytes("RGB", (2048, 2048), os.urandom(2048 * 2048 * 3))
    for fmt, kw in (("PNG", {}), ("WEBP", {"lossless": True})):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        assert buf.getvalue().count(b"\xff\xda") > 100
        assert check_result(_write(tmp_path, f"big.{fmt.lower()}", buf.getvalue())) == (2048, 2048)


def test_too_many_pixels_is_refused_from_the_header(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("1", (8000, 6000)).save(buf, "PNG")  # 48 MP in a few kB
    assert 8000 * 6000 > RESULT_MAX_PIXELS
    with pytest.raises(InvalidImage, match="the limit is 40 megapixels"):
        check_result(_write(tmp_path, "big.png", buf.getvalue()))


async def test_pool_runs_the_check_off_the_loop(tmp_path: Path) -> None:
    data = make_image("JPEG", size=(64, 64), seed=1)
    async with ImagePool() as pool:
        await pool.check_result(_write(tmp_path, "ok.jpg", data))
        with pytest.raises(InvalidImage):
            await pool.check_result(_write(tmp_path, "cut.jpg", data[:200]))


def test_damaged_png_result_is_refused(tmp_path: Path) -> None:
    from tests import imagecorpus as corpus

    # Valid signature and chunks (every CRC right), scrambled pixel stream.
    with pytest.raises(InvalidImage, match="damaged or truncated"):
        check_result(_write(tmp_path, "result.png", corpus.damaged_png()))

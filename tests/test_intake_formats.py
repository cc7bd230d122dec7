"""BMP, TIFF, AVIF and HEIC inputs are decoded and converted like any other (issue 11, part 3)."""

from __future__ import annotations

import io
import logging
import sys
import time

import pytest
from PIL import Image

from bot.errors import InvalidImage
from bot.intake import IntakeLimits, PreparedImage, formats, prepare
from tests import imagecorpus as corpus
from tests.test_intake import assert_clean

LIMITS = IntakeLimits()


def _prepare(data: bytes, aspect_ratio: str | None = None, **limits: object) -> PreparedImage:
    return prepare(data, aspect_ratio=aspect_ratio, limits=IntakeLimits(**limits))


def _open(p: PreparedImage) -> Image.Image:
    im = Image.open(io.BytesIO(p.image.data))
    im.load()
    assert im.format == p.image.format in ("JPEG", "PNG", "WEBP")
    assert im.size == (p.image.width, p.image.height)
    return im


def _is_red(pixel: tuple[int, ...]) -> bool:
    return pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_rotated_tiff_comes_out_upright(orientation: int) -> None:
    # Stored turned, with the TIFF Orientation tag saying how to show it: upright 1536x2048.
    data = corpus.oriented_tiff(orientation, 1536, 2048)
    p = _prepare(data, max_side=512)
    im = _open(p)
    assert im.size == (384, 512)
    assert _is_red(im.getpixel((20, 20)))  # the upright top-left quarter
    assert im.getpixel((370, 500)) == pytest.approx((128, 128, 128), abs=6)
    assert p.source_format == "TIFF" and p.source_size == (1536, 2048)
    assert p.changes[0] == "converted from TIFF"
    assert ("rotated" in p.changes) == (orientation != 1)
    assert "downscaled from 1536x2048" in p.changes
    assert_clean(p)


def test_rotated_tiff_cropped_in_upright_coordinates() -> None:
    p = _prepare(corpus.oriented_tiff(6, 1536, 2048), aspect_ratio="1x1", max_side=512)
    im = _open(p)
    assert im.size == (512, 512)
    assert _is_red(im.getpixel((20, 20)))
    assert im.getpixel((500, 500)) == pytest.approx((128, 128, 128), abs=6)
    assert {"rotated", "cropped to 1x1", "downscaled from 1536x1536"} <= set(p.changes)


def test_multipage_tiff_uses_the_first_page() -> None:
    data = corpus.multipage_tiff(3)
    with Image.open(io.BytesIO(data)) as im:
        assert im.n_frames == 3
    p = _prepare(data)
    im = _open(p)
    assert im.size == (160, 120)  # the later pages are 320x240 and blue
    assert _is_red(im.getpixel((80, 60)))
    assert p.changes[:2] == ("converted from TIFF", "first page of a multi-page TIFF")


def test_avif_with_alpha_keeps_its_transparency() -> None:
    p = _prepare(corpus.avif_with_alpha())
    im = _open(p)
    assert p.source_format == "AVIF"
    assert p.image.format == "PNG" and im.mode == "RGBA"
    assert im.getpixel((10, 50)) == (0, 0, 0, 0)  # transparent, hidden red zeroed
    assert im.getpixel((190, 50))[3] == 255
    assert im.getpixel((190, 50))[:3] == pytest.approx((0, 200, 0), abs=12)
    assert p.changes == ("converted from AVIF", "transparency kept")
    assert_clean(p)


def test_bmp_converted_to_jpeg() -> None:
    p = _prepare(corpus.bmp())
    im = _open(p)
    assert (p.source_format, p.source_size) == ("BMP", (64, 48))
    assert p.image.format == "JPEG" and im.size == (64, 48)
    assert p.changes[0] == "converted from BMP"
    assert "converted from BMP" in p.describe()
    assert_clean(p)


def test_heic_decoded_through_pillow_heif() -> None:
    p = _prepare(corpus.heic())
    im = _open(p)
    assert p.source_format == "HEIF"
    assert p.image.format == "JPEG" and im.size == (320, 240)
    assert p.changes[0] == "converted from HEIF"
    # The picture survives: compare with the photo it was made from.
    original = corpus.photo(320, 240).getpixel((160, 120))
    assert im.getpixel((160, 120)) == pytest.approx(original, abs=24)
    assert_clean(p)


def test_heic_without_pillow_heif_is_refused_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data = corpus.heic()
    # As on a server without the extra: the import fails and the opener was never registered.
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    monkeypatch.setattr(formats, "_heif_registered", None)
    with caplog.at_level(logging.WARNING, logger="bot.intake.formats"):
        with pytest.raises(InvalidImage) as info:
            _prepare(data)
    assert str(info.value) == (
        "That file is a HEIC, which this server cannot read; send a JPEG, PNG or WebP."
    )
    assert isinstance(info.value, formats.UnreadableFormat) and info.value.kind == "HEIC"
    assert "pip install '.[heif]'" in caplog.text  # the README's command


# --- the caps hold before any decoding ------------------------------------------------------------

HEADER_CAPS = [
    ("bmp 60 MP", lambda: corpus.bmp_declaring(10000, 6000), "60.0 megapixels"),
    ("bmp 400 MP", lambda: corpus.bmp_declaring(20000, 20000), "400.0 megapixels"),
    ("tiff 60 MP", lambda: corpus.tiff_declaring(10000, 6000), "60.0 megapixels"),
    ("tiff side", lambda: corpus.tiff_declaring(20000, 1000), "20000x1000 pixels"),
    ("avif 60 MP", lambda: corpus.avif_declaring(10000, 6000), "60.0 megapixels"),
    ("heic 60 MP", lambda: corpus.heic_declaring(10000, 6000), "60.0 megapixels"),
]


@pytest.mark.parametrize(
    ("make", "words"), [c[1:] for c in HEADER_CAPS], ids=[c[0] for c in HEADER_CAPS]
)
def test_pixel_and_side_caps_read_from_the_header(make, words: str) -> None:
    # Each file holds a few KB of pixels for a small picture: a decode would fail as "damaged",
    # so the size sentence shows the cap was applied to the header alone.
    data = make()
    assert len(data) < 1_000_000
    start = time.perf_counter()
    with pytest.raises(InvalidImage, match=words):
        _prepare(data)
    assert time.perf_counter() - start < 1.0


def test_byte_cap_applies_to_the_new_formats() -> None:
    data = corpus.tiff_declaring(1000, 800) + b"\x00" * 2_000_000
    with pytest.raises(InvalidImage) as info:
        _prepare(data, max_bytes=1_000_000)
    assert str(info.value) == "That file is 2.0 MB; the limit is 1 MB."


def test_identify_names_the_converted_formats() -> None:
    assert formats.identify(corpus.tiff()) == "TIFF"
    assert formats.identify(corpus.bmp()) == "BMP"
    assert formats.identify(corpus.avif_with_alpha()) == "AVIF"
    assert formats.identify(corpus.heic()) == "HEIF"


def test_results_are_never_decoded_as_the_new_formats(tmp_path) -> None:
    # A backend's result must be JPEG, PNG or WebP; a TIFF posing as a result is refused.
    from bot.intake.verify import check_result

    path = tmp_path / "result.png"
    path.write_bytes(corpus.tiff())
    with pytest.raises(InvalidImage, match="damaged or truncated"):
        check_result(path)

"""prepare() on the generated corpus: every case is prepared correctly or refused in one sentence."""

from __future__ import annotations

import io
import struct
import time

import pytest
from PIL import Image

from bot.errors import InvalidImage, InvalidRequest
from bot.intake import IntakeLimits, PreparedImage, prepare, prepare_style_refs
from bot.remix.enums import ASPECT_RATIOS, MAX_REFS_BYTES
from tests import imagecorpus as corpus

LIMITS = IntakeLimits()
# Every case must finish well inside this (the corpus files are small; hostile ones are refused
# from the header).
CASE_SECONDS = 5.0


def _prepare(data: bytes, aspect_ratio: str | None = None, **limits: object) -> PreparedImage:
    start = time.perf_counter()
    try:
        return prepare(data, aspect_ratio=aspect_ratio, limits=IntakeLimits(**limits))
    finally:
        assert time.perf_counter() - start < CASE_SECONDS


def _open(p: PreparedImage) -> Image.Image:
    im = Image.open(io.BytesIO(p.image.data))
    im.load()
    assert im.format == p.image.format
    assert im.size == (p.image.width, p.image.height)
    return im


def _segments(data: bytes) -> list[str]:
    """Chunk/marker names of an encoded file, to prove no metadata container is present."""
    if data.startswith(b"\xff\xd8"):
        names, i = [], 2
        while i + 4 <= len(data) and data[i] == 0xFF:
            marker = data[i + 1]
            names.append(f"{marker:02X}")
            if marker == 0xDA:  # start of scan: pixel data follows
                break
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
        return names
    if data.startswith(b"\x89PNG"):
        names, i = [], 8
        while i + 8 <= len(data):
            length = struct.unpack(">I", data[i : i + 4])[0]
            names.append(data[i + 4 : i + 8].decode("latin-1"))
            i += 12 + length
        return names
    if data[8:12] == b"WEBP":
        names, i = [], 12
        while i + 8 <= len(data):
            length = struct.unpack("<I", data[i + 4 : i + 8])[0]
            names.append(data[i : i + 4].decode("latin-1").strip())
            i += 8 + length + (length & 1)
        return names
    raise AssertionError("unknown format")


def assert_clean(p: PreparedImage) -> None:
    """No EXIF, GPS, XMP, ICC, comments or text leave the bot; only the pixels and the codec."""
    segments = set(_segments(p.image.data))
    if p.image.format == "JPEG":
        # SOI/DQT/SOF/DHT/SOS and JFIF (APP0) only: no APP1 (EXIF/XMP), APP2 (ICC), COM, APP13.
        assert segments <= {"D8", "E0", "DB", "C0", "C4", "DA", "DD"}, segments
    elif p.image.format == "PNG":
        assert segments <= {"IHDR", "PLTE", "tRNS", "IDAT", "IEND"}, segments
    else:
        assert segments <= {"VP8", "VP8L", "VP8X", "ALPH"}, segments
    im = _open(p)
    assert not im.getexif()
    assert not {"exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"} & set(im.info)
    for secret in (b"Secret", b"PhoneMaker", b"Phone 15", b"taken at home"):
        assert secret not in p.image.data


# --- refusals ----------------------------------------------------------------------------------

REFUSALS = [
    ("empty", corpus.empty, "That file is empty, not an image; send a JPEG, PNG or WebP."),
    (
        "text named .png",
        corpus.text_named_png,
        "That file is not an image; send a JPEG, PNG or WebP.",
    ),
    ("random bytes", corpus.random_bytes, "That file is not an image; send a JPEG, PNG or WebP."),
    ("svg", corpus.svg, "That file is an SVG drawing; send a JPEG, PNG or WebP."),
    (
        "html",
        corpus.html,
        "That file is a web page (HTML), not an image; send a JPEG, PNG or WebP.",
    ),
    ("psd", corpus.psd_header, "That file is a Photoshop (PSD) file; send a JPEG, PNG or WebP."),
    ("truncated jpeg", corpus.truncated_jpeg, "That image is damaged or truncated."),
    ("truncated png", corpus.truncated_png, "That image is damaged or truncated."),
    ("damaged png stream", corpus.damaged_png, "That image is damaged or truncated."),
    ("png zlib stream cut", corpus.png_cut_zlib_stream, "That image is damaged or truncated."),
    (
        "png bomb",
        corpus.png_bomb,
        "That image is 400.0 megapixels; the limit is 50 megapixels.",
    ),
    (
        "jpeg over the pixel cap",
        lambda: corpus.jpeg_declaring(10000, 6000),
        "That image is 60.0 megapixels; the limit is 50 megapixels.",
    ),
    (
        "side over the cap",
        lambda: corpus.jpeg_declaring(20000, 1000),
        "That image is 20000x1000 pixels; the limit is 16384 pixels a side.",
    ),
    (
        "extreme strip",
        corpus.extreme_aspect_png,
        "That image is 10000x10 pixels; each side must be at least 16 pixels.",
    ),
    (
        "extreme aspect",
        lambda: corpus.extreme_aspect_png(10000, 100),
        "That image is 10000x100 pixels; its long side may be at most 10 times its short side.",
    ),
    (
        "ztxt bomb",
        corpus.png_ztxt_bomb,
        "That image carries too much embedded text; the limit is 1 MB of metadata.",
    ),
]


@pytest.mark.parametrize(
    ("make", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refused_with_one_sentence(make, message) -> None:
    with pytest.raises(InvalidImage) as info:
        _prepare(make())
    assert str(info.value) == message
    assert info.value.exit_code == 2


def test_truncated_jpeg_passes_verify_but_is_refused() -> None:
    # The reason prepare() does a full load: verify() does not look at JPEG scan data.
    im = Image.open(io.BytesIO(corpus.truncated_jpeg()))
    im.verify()
    with pytest.raises(InvalidImage, match="damaged or truncated"):
        _prepare(corpus.truncated_jpeg())


def test_damaged_png_refused_although_its_structure_is_valid() -> None:
    data = corpus.damaged_png()
    # Every chunk is intact (CRCs match), so only decoding the pixels can tell.
    Image.open(io.BytesIO(data)).verify()
    # Pillow reports the broken stream once, then a second load() passes on the half-decoded
    # picture: the first error must be the one that counts, wherever it happens (main read the
    # PNG's EXIF first, which loads the pixels, inside a broad except).
    im = Image.open(io.BytesIO(data))
    with pytest.raises(OSError):
        im.load()
    im.load()
    with pytest.raises(InvalidImage) as info:
        _prepare(data)
    assert str(info.value) == "That image is damaged or truncated."


def test_byte_cap_is_checked_before_anything_else() -> None:
    data = b"\x00" * 31_200_000  # not even an image: the size is refused first
    with pytest.raises(InvalidImage) as info:
        _prepare(data)
    assert str(info.value) == "That file is 31.2 MB; the limit is 25 MB."


def test_pixel_cap_above_pillow_threshold_is_clamped() -> None:
    # 100 MP with a configured cap of 150 MP: Pillow's bomb warning (89.5 MP) is an error here.
    with pytest.raises(InvalidImage) as info:
        _prepare(corpus.jpeg_declaring(10000, 10000), max_pixels=150_000_000, max_input_side=20000)
    assert str(info.value) == "That image is 100.0 megapixels; the limit is 89.4785 megapixels."


def test_global_warning_filters_and_pillow_limit_untouched() -> None:
    import warnings

    before = list(warnings.filters)
    pixels = Image.MAX_IMAGE_PIXELS
    with pytest.raises(InvalidImage):
        _prepare(corpus.jpeg_declaring(10000, 10000), max_pixels=150_000_000, max_input_side=20000)
    assert warnings.filters == before
    assert Image.MAX_IMAGE_PIXELS == pixels


def test_crop_that_would_leave_too_little_is_refused() -> None:
    with pytest.raises(InvalidImage) as info:
        _prepare(corpus.jpeg(200, 20), aspect_ratio="1x3")
    assert str(info.value) == (
        "That image is 200x20 pixels; cropped to 1x3 it would be 7x20, "
        "under the 16 pixels a side minimum."
    )


def test_unknown_aspect_ratio_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="'5x7' is not supported"):
        _prepare(corpus.jpeg(), aspect_ratio="5x7")


# --- prepared correctly ------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_upright_portrait(orientation: int) -> None:
    p = _prepare(corpus.oriented_jpeg(orientation))
    im = _open(p)
    assert im.size == (1536, 2048)  # portrait, upright, within max_side
    assert p.aspect_ratio == "3x4"
    # The red marker is in the upright picture's top-left quarter, grey elsewhere.
    assert im.getpixel((20, 20))[0] > 200 and im.getpixel((20, 20))[1] < 60
    assert im.getpixel((1500, 2000)) == pytest.approx((128, 128, 128), abs=6)
    assert im.getpixel((1500, 20)) == pytest.approx((128, 128, 128), abs=6)
    assert ("rotated" in p.changes) == (orientation != 1)
    assert p.source_size == (1536, 2048)
    assert_clean(p)


def test_orientation_6_camera_shot_downscaled_to_portrait() -> None:
    # Stored 4000x3000 landscape, EXIF 6: the output is 3x4 portrait, long side ~max_side.
    p = _prepare(corpus.oriented_jpeg(6, 3000, 4000), draft_slack=1.0)
    im = _open(p)
    assert im.size == (1536, 2048)
    assert im.getpixel((20, 20))[0] > 200
    assert "downscaled from 3000x4000" in p.changes


def test_orientation_and_crop_together() -> None:
    # Stored 4000x3000, EXIF 6 -> upright 3000x4000; 1x1 keeps the middle 3000x3000, so the
    # red upright top-left quarter (1500x2000) becomes exactly the output's top-left quarter.
    p = _prepare(corpus.oriented_jpeg(6, 3000, 4000), aspect_ratio="1x1", draft_slack=1.0)
    im = _open(p)
    assert im.size == (2048, 2048)
    assert im.getpixel((100, 100))[0] > 200 and im.getpixel((100, 100))[1] < 60
    assert im.getpixel((1000, 1000))[0] > 200
    for xy in ((1100, 100), (100, 1100), (1900, 1900)):
        assert im.getpixel(xy) == pytest.approx((128, 128, 128), abs=6)
    assert {"rotated", "cropped to 1x1", "downscaled from 3000x3000"} <= set(p.changes)


def test_xmp_only_orientation_applied_and_stripped() -> None:
    p = _prepare(corpus.xmp_oriented_jpeg())
    im = _open(p)
    assert im.size == (300, 400)
    assert im.getpixel((20, 20))[0] > 200
    assert "rotated" in p.changes
    assert_clean(p)


def test_large_jpeg_downscaled_and_cropped_to_requested_ratio() -> None:
    p = _prepare(corpus.smooth_jpeg(3200, 2400), aspect_ratio="16x9", draft_slack=1.0)
    assert (p.image.width, p.image.height) == (2048, 1152)
    assert p.aspect_ratio == "16x9"
    assert "cropped to 16x9" in p.changes
    assert "downscaled from 3200x1800" in p.changes
    assert p.image.format == "JPEG"
    assert_clean(p)


def test_draft_slack_accepts_dct_size_just_under_max_side() -> None:
    # 4000x3000 at DCT scale 1/2 is 2000x1500: within 5% of 2048, so no full-size decode.
    p = _prepare(corpus.smooth_jpeg(4000, 3000))
    assert (p.image.width, p.image.height) == (2000, 1500)
    exact = _prepare(corpus.smooth_jpeg(4000, 3000), draft_slack=1.0)
    assert (exact.image.width, exact.image.height) == (2048, 1536)


def test_auto_aspect_picks_nearest_supported_ratio() -> None:
    p = _prepare(corpus.jpeg(1920, 1080))
    assert p.aspect_ratio == "16x9"
    assert not any(c.startswith("cropped") for c in p.changes)  # exact already
    p = _prepare(corpus.jpeg(1000, 900))  # 1.11: nearest is 1x1 (10:9 is not offered)
    assert p.aspect_ratio == "1x1"
    assert (p.image.width, p.image.height) == (900, 900)
    assert p.aspect_ratio in ASPECT_RATIOS


def test_auto_aspect_limited_to_the_backend_ratios() -> None:
    from bot.remix.enums import LEGACY_ASPECT_RATIOS

    # 4:5 is offered by v3 but not by the legacy API: the nearest legacy ratio is 3x4.
    assert _prepare(corpus.jpeg(800, 1000)).aspect_ratio == "4x5"
    p = _prepare(corpus.jpeg(800, 1000), ratios=LEGACY_ASPECT_RATIOS)
    assert p.aspect_ratio == "3x4"
    assert (p.image.width, p.image.height) == (750, 1000)


def test_auto_aspect_off_keeps_shape_and_sends_no_ratio() -> None:
    p = _prepare(corpus.jpeg(1000, 900), auto_aspect=False)
    assert p.aspect_ratio is None
    assert (p.image.width, p.image.height) == (1000, 900)


def test_small_image_never_upscaled() -> None:
    p = _prepare(corpus.jpeg(640, 480))
    assert (p.image.width, p.image.height) == (640, 480)
    assert not any(c.startswith("downscaled") for c in p.changes)


def test_cmyk_converted_to_rgb() -> None:
    p = _prepare(corpus.cmyk_jpeg())
    im = _open(p)
    assert im.mode == "RGB"
    assert im.getpixel((20, 120)) == pytest.approx((255, 0, 0), abs=8)
    assert im.getpixel((300, 120)) == pytest.approx((255, 255, 255), abs=8)
    assert "converted from CMYK" in p.changes


def test_16_bit_grey_scaled_not_clipped() -> None:
    p = _prepare(corpus.gray16_png(40000))
    im = _open(p)
    assert im.mode == "RGB"
    # 40000 / 65535 * 255 = 155.6; clipping would give 255.
    assert im.getpixel((10, 10)) == pytest.approx((156, 156, 156), abs=2)


@pytest.mark.parametrize(
    "make",
    [corpus.rgba_hidden_colour_png, corpus.la_png, corpus.palette_transparent_png],
    ids=["rgba", "la", "palette+transparency"],
)
def test_transparency_kept_as_png_without_hidden_colour(make) -> None:
    p = _prepare(make())
    im = _open(p)
    assert p.image.format == "PNG" and im.mode == "RGBA"
    assert im.getpixel((10, 50)) == (0, 0, 0, 0)  # transparent, and the hidden colour is gone
    assert im.getpixel((190, 50))[3] == 255
    assert "transparency kept" in p.changes
    assert_clean(p)


def test_opaque_alpha_becomes_jpeg() -> None:
    p = _prepare(corpus.rgba_opaque_png())
    assert p.image.format == "JPEG"
    assert _open(p).mode == "RGB"


@pytest.mark.parametrize(
    "make", [corpus.animated_gif, corpus.animated_webp, corpus.apng], ids=["gif", "webp", "apng"]
)
def test_animation_gives_first_frame_quickly(make) -> None:
    data = make()
    start = time.perf_counter()
    p = _prepare(data)
    assert time.perf_counter() - start < 0.5  # 150 frames: only the first is decoded
    im = _open(p)
    assert im.getpixel((80, 60)) == pytest.approx((255, 0, 0), abs=8)  # frame 0 is red
    assert "first frame of an animation" in p.changes
    assert p.image.format == "JPEG"


def test_single_frame_gif_accepted() -> None:
    p = _prepare(corpus.palette_opaque_gif())
    assert p.source_format == "GIF" and p.image.format == "JPEG"
    assert "first frame of an animation" not in p.changes


@pytest.mark.parametrize(
    "make",
    [
        corpus.jpeg_with_private_metadata,
        corpus.png_with_private_metadata,
        corpus.webp_with_private_metadata,
    ],
    ids=["jpeg", "png", "webp"],
)
def test_private_metadata_never_leaves(make) -> None:
    p = _prepare(make())
    assert "metadata stripped" in p.changes
    assert_clean(p)


def test_garbage_colour_profile_ignored_and_stripped() -> None:
    p = _prepare(corpus.jpeg_with_garbage_icc())
    assert "colour profile converted to sRGB" not in p.changes
    assert "metadata stripped" in p.changes
    assert_clean(p)


def test_huge_text_chunk_stripped() -> None:
    data = corpus.png_huge_text()
    assert len(data) > 8_000_000
    p = _prepare(data)
    assert len(p.image.data) < 100_000
    assert "metadata stripped" in p.changes
    assert_clean(p)


def test_always_under_backend_limit() -> None:
    # Pure noise does not fit 300 kB as JPEG q90: quality steps, then downscale.
    p = _prepare(corpus.noise_png(1000, 1000), backend_max_bytes=300_000)
    assert len(p.image.data) < 300_000
    assert any(c.startswith("saved as JPEG quality") for c in p.changes)


def test_summary_is_json_safe_and_describe_is_readable() -> None:
    import json

    p = _prepare(corpus.oriented_jpeg(6, 3000, 4000), aspect_ratio="1x1")
    summary = json.loads(json.dumps(p.summary()))
    assert summary["format"] == "JPEG"
    assert (summary["width"], summary["height"]) == (p.image.width, p.image.height)
    assert summary["bytes"] == len(p.image.data)
    assert summary["aspect_ratio"] == "1x1"
    assert summary["source"] == {
        "format": "JPEG",
        "width": 3000,
        "height": 4000,
        "bytes": len(corpus.oriented_jpeg(6, 3000, 4000)),
    }
    assert "rotated" in summary["changes"] and "cropped to 1x1" in summary["changes"]
    text = p.describe()
    assert "JPEG 3000x4000" in text and "cropped to 1x1" in text and "1x1" in text


# --- style references --------------------------------------------------------------------------


def test_style_refs_not_cropped_and_at_most_four() -> None:
    refs = prepare_style_refs([corpus.jpeg(1000, 400), corpus.png(300, 900)], LIMITS)
    assert [(r.image.width, r.image.height) for r in refs] == [(1000, 400), (300, 900)]
    assert all(r.aspect_ratio is None for r in refs)
    with pytest.raises(InvalidImage) as info:
        prepare_style_refs([corpus.jpeg(64, 64)] * 5, LIMITS)
    assert str(info.value) == "You sent 5 style reference images; the limit is 4."


def test_style_refs_together_under_10_mb() -> None:
    # Four noise images of ~2.9 MB each as JPEG: together over 10 MB until re-encoded smaller.
    datas = [corpus.noise_png(1800, 1800, seed=s % 2) for s in range(4)]
    first = prepare(datas[0], aspect_ratio=None, limits=LIMITS)
    assert len(first.image.data) * 4 > MAX_REFS_BYTES  # the case really needs the joint budget
    refs = prepare_style_refs(datas, LIMITS)
    assert sum(len(r.image.data) for r in refs) < MAX_REFS_BYTES
    assert len(refs) == 4


def test_style_ref_refusal_names_the_problem() -> None:
    with pytest.raises(InvalidImage, match="Photoshop"):
        prepare_style_refs([corpus.jpeg(), corpus.psd_header()], LIMITS)


def test_from_settings_reads_intake_settings() -> None:
    from bot.settings import load_settings

    s = load_settings({}, dotenv=None, overrides={"max_side": 1024, "auto_aspect": False})
    limits = IntakeLimits.from_settings(s)
    assert (limits.max_bytes, limits.max_pixels, limits.max_side, limits.auto_aspect) == (
        25_000_000,
        50_000_000,
        1024,
        False,
    )

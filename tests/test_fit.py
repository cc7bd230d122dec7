"""fit_for_upload: per-file and per-message limits, 10 files a message, never upscale."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.errors import InvalidImage
from bot.intake import MULTIPART_MARGIN, UploadFile, fit_for_upload
from tests import imagecorpus as corpus

MIB = 1024 * 1024


def _noise_file(i: int, side: int) -> UploadFile:
    return UploadFile(f"result_{i}.png", corpus.noise_png(side, side, seed=i))


def test_eight_3mb_results_split_in_two_messages() -> None:
    # 8 x ~3.3 MB = ~26.5 MB: over 25 MiB in one request, so two messages of four.
    files = [_noise_file(i, 1050) for i in range(8)]
    assert all(3_000_000 < len(f.data) < 4_000_000 for f in files)
    assert sum(len(f.data) for f in files) > 25 * MIB
    messages = fit_for_upload(files, per_file_limit=10 * MIB, per_message_limit=25 * MIB)
    assert [len(m) for m in messages] == [4, 4]
    sent = [f for m in messages for f in m]
    assert sent == files  # untouched (bytes identical) and in order
    for m in messages:
        assert sum(len(f.data) for f in m) <= 25 * MIB - MULTIPART_MARGIN
        assert all(len(f.data) <= 10 * MIB for f in m)


def test_file_over_the_limit_is_reencoded_under_it_and_not_upscaled() -> None:
    big = _noise_file(99, 1600)  # ~7.7 MB PNG
    small = UploadFile("small.png", corpus.png(300, 200))
    limit = 3 * MIB
    assert len(big.data) > limit
    messages = fit_for_upload([big, small], per_file_limit=limit)
    assert len(messages) == 1
    out_big, out_small = messages[0]
    assert out_small is small  # under the limit: not touched
    assert len(out_big.data) <= limit
    assert out_big.filename == "result_99.jpg"
    im = Image.open(io.BytesIO(out_big.data))
    assert im.format == "JPEG"
    assert im.width <= 1600 and im.height <= 1600


def test_quality_steps_before_downscale() -> None:
    # A photo-like PNG over the limit fits as JPEG at full size: no need to shrink it.
    data = corpus.png()
    limit = len(data) // 3
    ((out,),) = fit_for_upload([UploadFile("photo.png", data)], per_file_limit=limit)
    assert len(out.data) <= limit
    assert Image.open(io.BytesIO(out.data)).size == (1200, 900)


def test_transparent_result_keeps_alpha() -> None:
    im = Image.new("RGBA", (900, 900), (0, 0, 0, 0))  # right half stays transparent
    noise = Image.open(io.BytesIO(corpus.noise_png(450, 900, seed=5))).convert("RGBA")
    im.paste(noise, (0, 0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    limit = len(buf.getvalue()) // 2
    ((out,),) = fit_for_upload([UploadFile("sticker.png", buf.getvalue())], per_file_limit=limit)
    assert len(out.data) <= limit
    re = Image.open(io.BytesIO(out.data))
    # Noise does not fit half its PNG size as PNG again: WebP with alpha, named accordingly.
    assert re.format == "WEBP" and out.filename == "sticker.webp"
    assert re.mode == "RGBA" and re.getpixel((800, 450))[3] == 0


def test_more_than_ten_files_split() -> None:
    files = [UploadFile(f"f{i}.jpg", corpus.jpeg(64, 48)) for i in range(23)]
    messages = fit_for_upload(files, per_file_limit=10 * MIB)
    assert [len(m) for m in messages] == [8, 8, 7]
    assert [f for m in messages for f in m] == files
    assert all(len(m) <= 10 for m in messages)


def test_per_file_limit_above_message_budget_is_capped() -> None:
    # A boosted guild may allow 50 MiB per file, but one request still carries 25 MiB at most.
    files = [_noise_file(i, 1050) for i in range(8)]
    messages = fit_for_upload(files, per_file_limit=50 * MIB, per_message_limit=25 * MIB)
    assert all(sum(len(f.data) for f in m) <= 25 * MIB - MULTIPART_MARGIN for m in messages)


def test_empty_input_gives_no_messages() -> None:
    assert fit_for_upload([], per_file_limit=10 * MIB) == []


def test_result_declaring_too_many_pixels_is_not_decoded() -> None:
    bomb = UploadFile("result.jpg", corpus.jpeg_declaring(10000, 6000))
    with pytest.raises(InvalidImage, match=r"result\.jpg is over the"):
        fit_for_upload([bomb], per_file_limit=1024)

"""Masks for edits: the member's mask through the image's own crop and scale, pure black and white,
all-white refused; an input's transparent areas as the mask when none is given."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from bot.errors import InvalidImage
from bot.intake import ImagePool, IntakeLimits, PreparedImage, prepare
from bot.intake.mask import (
    edit_mask,
    edit_mask_off_loop,
    mask_from_transparency,
    prepare_mask,
)
from bot.media import EncodedImage

LIMITS = IntakeLimits(max_side=1024)


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def photo(size: tuple[int, int], fmt: str = "PNG", exif_orientation: int | None = None) -> bytes:
    """A picture with some structure (so encoders do real work)."""
    im = Image.new("RGB", size, (90, 140, 200))
    im.paste((200, 80, 40), (0, 0, size[0] // 3, size[1]))
    buf = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        im.save(buf, fmt, exif=exif)
    else:
        im.save(buf, fmt)
    return buf.getvalue()


def mask_image(size: tuple[int, int], black_box: tuple[int, int, int, int]) -> Image.Image:
    """White (keep) with a black (change) box."""
    im = Image.new("L", size, 255)
    im.paste(0, black_box)
    return im


def decode(mask: EncodedImage) -> Image.Image:
    im = Image.open(io.BytesIO(mask.data))
    im.load()
    return im


def levels(im: Image.Image) -> set[int]:
    return {v for v, n in enumerate(im.convert("L").histogram()) if n}


def black_columns(im: Image.Image) -> tuple[int, int]:
    """First and last column holding a black pixel on the middle row."""
    row = [im.getpixel((x, im.height // 2)) for x in range(im.width)]
    black = [x for x, v in enumerate(row) if v == 0]
    return black[0], black[-1]


def prep(data: bytes, ratio: str | None = None, limits: IntakeLimits = LIMITS) -> PreparedImage:
    return prepare(data, aspect_ratio=ratio, limits=limits)


def test_a_mask_of_the_source_size_arrives_at_the_prepared_size() -> None:
    image = prep(photo((800, 600)))
    mask = prepare_mask(image, png(mask_image((800, 600), (0, 0, 400, 600))), LIMITS)
    assert (mask.format, mask.width, mask.height) == ("PNG", image.image.width, image.image.height)
    im = decode(mask)
    assert im.size == (800, 600) and levels(im) == {0, 255}
    assert black_columns(im) == (0, 399)


def test_the_mask_is_cropped_where_the_image_was() -> None:
    # 1200x800 cropped to 1x1 keeps the centre 800x800 (columns 200-999 of the source).
    image = prep(photo((1200, 800)), "1x1")
    assert (image.image.width, image.image.height) == (800, 800)
    source_mask = mask_image((1200, 800), (0, 0, 400, 800))  # black: source columns 0-399
    im = decode(prepare_mask(image, png(source_mask), LIMITS))
    assert im.size == (800, 800)
    first, last = black_columns(im)
    assert first == 0 and abs(last - 199) <= 1  # source columns 200-399 are output 0-199


def test_the_mask_is_downscaled_like_the_image_and_may_be_drawn_at_another_scale() -> None:
    # 3000x2000 -> 1024x683; a mask drawn at half the source size marks the same place.
    image = prep(photo((3000, 2000)))
    assert (image.image.width, image.image.height) == (1024, 683)
    half = mask_image((1500, 1000), (750, 0, 1500, 1000))  # right half
    im = decode(prepare_mask(image, png(half), LIMITS))
    assert im.size == (1024, 683)
    first, last = black_columns(im)
    assert abs(first - 512) <= 1 and last == 1023


def test_a_rotated_photo_and_its_upright_mask_line_up() -> None:
    # Stored 600x800 with EXIF orientation 6: upright it is 800x600, which is what the member
    # sees and draws the mask over.
    image = prep(photo((600, 800), "JPEG", exif_orientation=6), "1x1")
    assert image.source_size == (800, 600)
    assert (image.image.width, image.image.height) == (600, 600)
    upright_mask = mask_image((800, 600), (0, 0, 200, 600))  # upright columns 0-199
    im = decode(prepare_mask(image, png(upright_mask), LIMITS))
    assert im.size == (600, 600)
    first, last = black_columns(im)  # crop keeps upright columns 100-699
    assert first == 0 and abs(last - 99) <= 1


def test_the_mask_follows_the_image_when_the_encoder_had_to_shrink_it() -> None:
    rng = random.Random(7)
    noise = Image.frombytes("RGB", (900, 600), bytes(rng.getrandbits(8) for _ in range(900 * 1800)))
    limits = IntakeLimits(max_side=1024, backend_max_bytes=150_000)
    image = prep(png(noise), limits=limits)
    assert image.image.width < 900  # noise does not fit 150 KB at full size
    im = decode(prepare_mask(image, png(mask_image((900, 600), (0, 0, 450, 600))), limits))
    assert im.size == (image.image.width, image.image.height)


def test_colours_and_greys_become_pure_black_and_white() -> None:
    image = prep(photo((400, 300)))
    drawn = Image.new("RGB", (400, 300), (255, 255, 255))
    drawn.paste((100, 100, 100), (0, 0, 100, 300))  # dark grey: change
    drawn.paste((200, 200, 200), (100, 0, 200, 300))  # light grey: keep
    drawn.paste((255, 0, 0), (200, 0, 300, 300))  # red, luminance 76: change
    buf = io.BytesIO()
    drawn.save(buf, "JPEG", quality=70)  # JPEG noise must not leave greys behind
    im = decode(prepare_mask(image, buf.getvalue(), LIMITS))
    assert levels(im) == {0, 255}
    y = 150
    assert [im.getpixel((x, y)) for x in (50, 150, 250, 350)] == [0, 255, 0, 255]


def test_transparent_parts_of_a_mask_mean_keep() -> None:
    image = prep(photo((400, 300)))
    layer = Image.new("RGBA", (400, 300), (0, 0, 0, 0))  # an empty layer...
    layer.paste((0, 0, 0, 255), (300, 0, 400, 300))  # ...with black painted on the right
    im = decode(prepare_mask(image, png(layer), LIMITS))
    assert im.getpixel((100, 150)) == 255 and im.getpixel((350, 150)) == 0


@pytest.mark.parametrize("shade", [255, 200])
def test_an_all_white_mask_is_refused(shade: int) -> None:
    image = prep(photo((400, 300)))
    with pytest.raises(InvalidImage, match="the mask marks nothing to change"):
        prepare_mask(image, png(Image.new("L", (400, 300), shade)), LIMITS)


def test_a_mask_of_another_shape_is_refused() -> None:
    image = prep(photo((800, 600)))
    with pytest.raises(InvalidImage, match="The mask is 600x600 pixels but the image is 800x600"):
        prepare_mask(image, png(mask_image((600, 600), (0, 0, 10, 10))), LIMITS)


def test_a_mask_that_is_not_an_image_is_refused_by_name() -> None:
    image = prep(photo((400, 300)))
    with pytest.raises(InvalidImage, match=r"^The mask was refused: that file is not an image"):
        prepare_mask(image, b"just some text, not a picture", LIMITS)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_transparent_areas_become_the_mask(fmt: str) -> None:
    im = Image.new("RGBA", (400, 300), (30, 160, 90, 255))
    im.paste((0, 0, 0, 0), (100, 50, 200, 250))  # a hole to fill
    buf = io.BytesIO()
    im.save(buf, fmt, lossless=True) if fmt == "WEBP" else im.save(buf, fmt)
    image = prep(buf.getvalue())
    mask = mask_from_transparency(image)
    assert mask is not None and (mask.width, mask.height) == (image.image.width, image.image.height)
    got = decode(mask)
    assert levels(got) == {0, 255}
    assert got.getpixel((150, 150)) == 0 and got.getpixel((50, 150)) == 255
    assert got.getpixel((250, 150)) == 255
    assert edit_mask(image, None, LIMITS) == mask


def test_no_transparent_area_no_mask() -> None:
    assert mask_from_transparency(prep(photo((400, 300), "JPEG"))) is None
    faint = Image.new("RGBA", (400, 300), (30, 160, 90, 220))  # see-through, barely
    image = prep(png(faint))
    assert image.image.format == "PNG"
    assert mask_from_transparency(image) is None


def test_a_given_mask_wins_over_transparency() -> None:
    im = Image.new("RGBA", (400, 300), (30, 160, 90, 255))
    im.paste((0, 0, 0, 0), (0, 0, 100, 300))
    image = prep(png(im))
    given = edit_mask(image, png(mask_image((400, 300), (300, 0, 400, 300))), LIMITS)
    assert given is not None
    got = decode(given)
    assert got.getpixel((50, 150)) == 255 and got.getpixel((350, 150)) == 0


async def test_off_the_loop() -> None:
    image = prep(photo((400, 300)))
    async with ImagePool() as pool:
        mask = await edit_mask_off_loop(
            pool, image, png(mask_image((400, 300), (0, 0, 10, 10))), LIMITS
        )
        assert mask is not None and (mask.width, mask.height) == (400, 300)
        with pytest.raises(InvalidImage, match="nothing to change"):
            await edit_mask_off_loop(pool, image, png(Image.new("L", (400, 300), 255)), LIMITS)


def test_a_stored_input_and_its_prepared_mask_match_again_on_a_reroll() -> None:
    # A reroll prepares the stored (already prepared) input again; the stored prepared mask
    # must come through that second preparation unchanged.
    first = prep(photo((1200, 800)), "1x1")
    mask = prepare_mask(first, png(mask_image((1200, 800), (0, 0, 400, 800))), LIMITS)
    again = prep(first.image.data, first.aspect_ratio)
    assert (again.image.width, again.image.height) == (first.image.width, first.image.height)
    assert decode(prepare_mask(again, mask.data, LIMITS)).tobytes() == decode(mask).tobytes()

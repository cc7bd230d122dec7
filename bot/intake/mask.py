"""Masks for edits, at exactly the prepared image's pixels: black marks what to change, white
what to keep.

A member's mask is drawn over the picture they uploaded, so it goes through the same `prepare`
as the picture (orientation, the same centre crop to the same ratio, the same downscale) and is
then brought to the prepared image's final size, in case the encoder shrank the image to fit the
backend's byte limit. Without a mask, an image with transparent areas is edited there. Blocking
Pillow work: the event loop calls `edit_mask_off_loop`.
"""

from __future__ import annotations

import dataclasses
import io
import math

from PIL import Image

from bot.errors import InvalidImage
from bot.intake.geometry import CROP_TOLERANCE
from bot.intake.limits import IntakeLimits
from bot.intake.pool import ImagePool
from bot.intake.prepare import PreparedImage, prepare
from bot.media import EncodedImage

# Grey below this is black (change); the rest is white (keep). Half way, so anti-aliased edges
# and JPEG noise fall to the side they are closer to.
GREY_THRESHOLD = 128
# Pixels less than half opaque are the "transparent areas" an image without a mask is edited in.
ALPHA_THRESHOLD = 128
NOTHING_TO_CHANGE = (
    "Nothing to edit: the mask marks nothing to change (black marks what to change, "
    "white what to keep)."
)


def prepare_mask(image: PreparedImage, data: bytes, limits: IntakeLimits) -> EncodedImage:
    """The member's mask, cropped and scaled as `image` was, in pure black and white at exactly
    its size; InvalidImage when it cannot be used or marks nothing to change."""
    # The image's own ratio (or none), never one picked for the mask by itself.
    mask_limits = dataclasses.replace(limits, auto_aspect=False)
    try:
        shaped = prepare(data, aspect_ratio=image.aspect_ratio, limits=mask_limits)
    except InvalidImage as exc:
        text = str(exc)
        raise InvalidImage(f"The mask was refused: {text[:1].lower()}{text[1:]}") from None
    _check_shape(shaped.source_size, image.source_size)
    with Image.open(io.BytesIO(shaped.image.data)) as decoded:
        grey = _grey_over_white(decoded)
    size = (image.image.width, image.image.height)
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    black_white = _threshold(grey, GREY_THRESHOLD)
    if black_white.getextrema()[0] == 255:
        raise InvalidImage(NOTHING_TO_CHANGE)
    return _encode(black_white)


def mask_from_transparency(image: PreparedImage) -> EncodedImage | None:
    """A mask that changes the image's transparent areas, or None when it has none."""
    if image.image.format not in ("PNG", "WEBP"):
        return None  # intake encodes every picture without transparency as JPEG
    with Image.open(io.BytesIO(image.image.data)) as decoded:
        if "A" not in decoded.getbands():
            return None
        alpha = decoded.getchannel("A")
    black_white = _threshold(alpha, ALPHA_THRESHOLD)
    if black_white.getextrema()[0] == 255:
        return None  # only faintly see-through pixels: nothing a member would call transparent
    return _encode(black_white)


def edit_mask(
    image: PreparedImage, mask_data: bytes | None, limits: IntakeLimits
) -> EncodedImage | None:
    """The mask to send with `image` to a backend that takes one: the member's mask if they
    gave one, else the image's transparent areas, else None (the whole image is edited)."""
    if mask_data is not None:
        return prepare_mask(image, mask_data, limits)
    return mask_from_transparency(image)


async def edit_mask_off_loop(
    pool: ImagePool, image: PreparedImage, mask_data: bytes | None, limits: IntakeLimits
) -> EncodedImage | None:
    """:func:`edit_mask` in the pool, bounded by its timeout (InvalidImage past it)."""
    try:
        return await pool.run(edit_mask, image, mask_data, limits)
    except TimeoutError:
        raise InvalidImage(
            f"The mask took more than {pool.timeout:g} seconds to prepare; send a smaller one."
        ) from None


def _check_shape(mask_size: tuple[int, int], image_size: tuple[int, int]) -> None:
    """A mask must cover the picture it was drawn over: the same shape, at any scale."""
    (mw, mh), (iw, ih) = mask_size, image_size
    if abs(math.log((mw / mh) / (iw / ih))) > CROP_TOLERANCE:
        raise InvalidImage(
            f"The mask is {mw}x{mh} pixels but the image is {iw}x{ih}; draw the mask over the "
            "whole image, with the image's shape."
        )


def _grey_over_white(im: Image.Image) -> Image.Image:
    """Grey levels of the mask; transparent parts count as white (keep), like an empty layer."""
    if "A" in im.getbands() or im.mode == "P":
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    return im.convert("L")


def _threshold(grey: Image.Image, cut: int) -> Image.Image:
    """Pure black (below `cut`) and white, as an 8-bit grey image."""
    return grey.point(lambda v: 0 if v < cut else 255)


def _encode(black_white: Image.Image) -> EncodedImage:
    """PNG, lossless so the two levels stay two, with no metadata."""
    buf = io.BytesIO()
    black_white.save(buf, "PNG", optimize=True)
    return EncodedImage(buf.getvalue(), "PNG", black_white.width, black_white.height)

"""Pure size arithmetic: nearest aspect ratio, centre crops, fitting a long side, EXIF orientation."""

from __future__ import annotations

import math

from PIL import Image

from bot.remix.enums import ASPECT_RATIOS, ratio_value

# EXIF orientation -> the transpose that makes the picture upright (as ImageOps.exif_transpose).
ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_SIDES = frozenset({5, 6, 7, 8})
# A crop removing less than this share of a side is not worth doing (rounding, 1-px borders).
CROP_TOLERANCE = 0.01


def nearest_ratio(width: int, height: int, ratios: tuple[str, ...] = ASPECT_RATIOS) -> str:
    """The supported ratio closest to width:height (compared on a log scale, so 2:1 ~ 1:2)."""
    own = math.log(width / height)
    return min(ratios, key=lambda r: abs(math.log(ratio_value(r)) - own))


def crop_size(width: int, height: int, aspect_ratio: str) -> tuple[int, int]:
    """The largest width x height of the given ratio inside the image; the image itself if close."""
    target = ratio_value(aspect_ratio)
    if width / height > target:
        cw, ch = max(1, round(height * target)), height
    else:
        cw, ch = width, max(1, round(width / target))
    if cw >= width * (1 - CROP_TOLERANCE) and ch >= height * (1 - CROP_TOLERANCE):
        return width, height
    return cw, ch


def centre_box(width: int, height: int, cw: int, ch: int) -> tuple[int, int, int, int]:
    """The box of size cw x ch centred in width x height."""
    left = (width - cw) // 2
    top = (height - ch) // 2
    return left, top, left + cw, top + ch


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale down so the long side is at most max_side, keeping the shape; never scale up."""
    long_side = max(width, height)
    if long_side <= max_side:
        return width, height
    scale = max_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def stored(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """Map an upright (w, h) to the file's stored orientation (and back: it is its own inverse)."""
    return (size[1], size[0]) if orientation in SWAPS_SIDES else size


def jpeg_draft_request(
    full: tuple[int, int], needed: tuple[int, int], slack: float
) -> tuple[int, int]:
    """The size to pass to JPEG draft(): `needed`, or one DCT step smaller if that stays >= slack.

    Pillow's draft() picks the largest scale s in 8, 4, 2, 1 with full // needed >= s. When the
    next step (2s) would give a result still at least `slack` of what is needed, ask for that
    instead: decoding at half size is ~2x cheaper and saves a full-size resample.
    """
    w, h = full
    nw, nh = max(1, needed[0]), max(1, needed[1])
    scale = min(w // nw, h // nh)
    s = next((c for c in (8, 4, 2, 1) if scale >= c), 1)
    if s < 8 and slack < 1.0:
        s2 = s * 2
        dw, dh = math.ceil(w / s2), math.ceil(h / s2)
        if dw >= nw * slack and dh >= nh * slack:
            return max(1, w // s2), max(1, h // s2)
    return nw, nh

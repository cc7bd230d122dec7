"""Bring any decoded mode to RGB, or RGBA when the picture really has transparency."""

from __future__ import annotations

import functools
import io
import logging

from PIL import Image, ImageCms

log = logging.getLogger(__name__)

# Larger embedded colour profiles are ignored rather than parsed (real ones are 0.5-600 KB).
MAX_ICC_BYTES = 1024 * 1024
# Modes that resize handles directly; colour conversion of CMYK waits until the image is small.
_RESIZABLE = frozenset({"L", "RGB", "RGBA", "CMYK"})


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _scale_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit grey to 8-bit by scaling the range, not clipping it (40000 must not become white)."""
    if im.mode == "F":
        _, hi = im.getextrema()
        top = 1.0 if hi <= 1.0 else (255.0 if hi <= 255.0 else 65535.0)
        return im.point(lambda v: v * (255.0 / top)).convert("L")
    im = im.convert("I")
    _, hi = im.getextrema()
    if hi <= 255:
        return im.convert("L")
    top = 65535 if hi <= 65535 else hi
    return im.point(lambda v: v * (255.0 / top)).convert("L")


def before_resize(im: Image.Image) -> tuple[Image.Image, str | None]:
    """Convert modes that cannot be resampled well (palette, 1-bit, 16-bit, LA); name the source."""
    mode = im.mode
    if mode in _RESIZABLE:
        return im, None
    if mode in ("P", "PA"):
        target = "RGBA" if mode == "PA" or im.has_transparency_data else "RGB"
        return im.convert(target), "palette"
    if mode in ("LA", "La", "RGBa"):
        return im.convert("RGBA"), None
    if mode == "1":
        return im.convert("L"), None
    if mode.startswith("I") or mode == "F":
        return _scale_to_l(im), f"{16 if mode.startswith('I;16') else 32}-bit"
    return im.convert("RGB"), mode


def to_srgb(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, bool]:
    """Convert to RGB/RGBA in sRGB, through the embedded profile when there is a usable one.

    Returns the image and whether a profile transform was applied. Profiles are untrusted input:
    capped in size, and any failure falls back to the plain conversion.
    """
    out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
    if icc and len(icc) <= MAX_ICC_BYTES and im.mode in ("RGB", "RGBA", "CMYK"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            # Already sRGB (by name): the transform would be an identity, skip its cost.
            if "srgb" not in ImageCms.getProfileDescription(src).lower():
                return ImageCms.profileToProfile(im, src, _srgb(), outputMode=out_mode), True
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
            log.debug("ignoring unusable colour profile: %s", type(exc).__name__)
    if im.mode != out_mode:
        im = im.convert(out_mode)
    return im, False


def clear_hidden_colour(im: Image.Image) -> Image.Image:
    """Zero the colour under fully transparent pixels, so no hidden picture leaves the bot."""
    alpha = im.getchannel("A")
    mask = alpha.point(lambda a: 255 if a else 0)
    return Image.composite(im, Image.new("RGBA", im.size, (0, 0, 0, 0)), mask)


def has_transparency(im: Image.Image) -> bool:
    """True when an RGBA image has at least one pixel that is not fully opaque."""
    return im.mode == "RGBA" and im.getchannel("A").getextrema()[0] < 255

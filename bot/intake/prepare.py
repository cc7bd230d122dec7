"""Turn an uploaded image into what the backend gets: checked, upright, cropped, small and clean.

Pipeline (order matters, see docs/intake.md): byte cap -> identify by content -> Image.open with
only that format's decoder (bomb warning is an error) -> pixel/side caps from the header -> full
load, before any metadata is read (JPEG: draft with the real target first) -> mode normalisation
-> crop + downscale in one resample -> colour to sRGB -> EXIF orientation -> encode without
metadata under the limit. Any decode error anywhere refuses the image.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from bot.errors import InvalidImage, InvalidRequest
from bot.intake import geometry, modes
from bot.intake.encode import encode_under
from bot.intake.formats import identify, open_restricted
from bot.intake.limits import IntakeLimits
from bot.media import EncodedImage
from bot.remix.enums import ASPECT_RATIOS, MAX_REFS_BYTES, MAX_STYLE_REFS

# info keys that describe the encoding, not the picture's owner; anything else is metadata.
_ENCODING_KEYS = frozenset(
    """jfif jfif_version jfif_unit jfif_density dpi progressive progression adobe adobe_transform
    transparency duration loop background gamma srgb interlace aspect version extension
    chromaticity bbox default_image disposal blend timestamp use_cached_image compression
    resolution primary bit_depth chroma nclx_profile original_orientation thumbnails
    depth_images aux""".split()
)
# TIFF keeps its descriptive tags in the tag directory, not in info: description, make, model,
# software, date, artist, host, copyright, XMP, IPTC, EXIF and GPS directories.
_TIFF_METADATA_TAGS = frozenset(
    {270, 271, 272, 305, 306, 315, 316, 33432, 700, 33723, 34665, 34853}
)
# Downscale filter, measured (docs/intake.md): BICUBIC is 1.4-1.6x cheaper than LANCZOS and within
# 43 dB (hard edges) to 55 dB (photos) PSNR of it; reducing_gap 2.0 (box-reduce by the integer
# part of factor/2 first) as Image.thumbnail does. JPEG draft does the heavy shrinking anyway.
RESAMPLE = Image.Resampling.BICUBIC
REDUCING_GAP = 2.0
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
# Formats the backends take as they are; anything else says "converted from ..." in changes.
_BACKEND_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP"})
# Only JPEG can decode straight to a smaller size (DCT scaling), so only it is drafted before load.
_DRAFTABLE = frozenset({"JPEG", "MPO"})
DAMAGED = "That image is damaged or truncated."


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the backend, and what was done to it on the way."""

    image: EncodedImage
    aspect_ratio: str | None
    source_format: str
    source_size: tuple[int, int]
    changes: tuple[str, ...] = ()
    source_bytes: int = field(default=0)

    def summary(self) -> dict[str, Any]:
        """JSON-safe description for `remixbot remix --dry-run --json` and logs."""
        return {
            "format": self.image.format,
            "width": self.image.width,
            "height": self.image.height,
            "bytes": len(self.image.data),
            "aspect_ratio": self.aspect_ratio,
            "changes": list(self.changes),
            "source": {
                "format": self.source_format,
                "width": self.source_size[0],
                "height": self.source_size[1],
                "bytes": self.source_bytes,
            },
        }

    def describe(self) -> str:
        """A few human lines for `remixbot remix --dry-run`."""
        sw, sh = self.source_size
        lines = [
            f"source:  {self.source_format} {sw}x{sh}, {_human(self.source_bytes)}",
            f"sending: {self.image.format} {self.image.width}x{self.image.height}, "
            f"{_human(len(self.image.data))}",
            f"aspect:  {self.aspect_ratio or 'not set (backend default)'}",
            f"changes: {', '.join(self.changes) if self.changes else 'none'}",
        ]
        return "\n".join(lines)


def _mb(n: int) -> str:
    """Bytes as decimal megabytes with one decimal, as the limits are stated (25 MB, 10 MB)."""
    return f"{n / 1e6:.1f} MB"


def _human(n: int) -> str:
    return _mb(n) if n >= 1e6 else f"{n / 1e3:.0f} KB"


def _mp(pixels: float) -> str:
    return f"{pixels / 1e6:.1f}"


def _pixel_cap(limits: IntakeLimits) -> int:
    """Our cap, never above Pillow's bomb-warning threshold (so the warning can never be needed)."""
    pillow = Image.MAX_IMAGE_PIXELS
    return min(limits.max_pixels, pillow) if pillow else limits.max_pixels


def _refuse_pixels(pixels: int, limits: IntakeLimits) -> InvalidImage:
    cap = _pixel_cap(limits)
    return InvalidImage(
        f"That image is {_mp(pixels)} megapixels; the limit is {cap / 1e6:g} megapixels."
    )


def _open(data: bytes, fmt: str, limits: IntakeLimits) -> Image.Image:
    """Image.open with only the sniffed format's decoder, bomb warnings raised as errors."""
    try:
        return open_restricted(data, (fmt,))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = _BOMB_PIXELS.search(str(exc))
        pixels = int(found.group(1)) if found else _pixel_cap(limits) + 1
        raise _refuse_pixels(pixels, limits) from None
    except ValueError as exc:
        if "TEXT" in str(exc).upper():  # PngImagePlugin.MAX_TEXT_CHUNK / MAX_TEXT_MEMORY
            raise InvalidImage(
                "That image carries too much embedded text; the limit is 1 MB of metadata."
            ) from None
        raise InvalidImage(DAMAGED) from None
    except Exception:
        # Sniffed as an accepted format but Pillow cannot read the header: broken.
        raise InvalidImage(DAMAGED) from None


def _check_geometry(size: tuple[int, int], limits: IntakeLimits) -> None:
    """Pixel, side and shape caps, from the header, before any pixel is decoded."""
    w, h = size
    if w * h > _pixel_cap(limits):
        raise _refuse_pixels(w * h, limits)
    if max(w, h) > limits.max_input_side:
        raise InvalidImage(
            f"That image is {w}x{h} pixels; the limit is {limits.max_input_side} pixels a side."
        )
    if min(w, h) < limits.min_side:
        raise InvalidImage(
            f"That image is {w}x{h} pixels; each side must be at least {limits.min_side} pixels."
        )
    if max(w, h) / min(w, h) > limits.max_aspect:
        raise InvalidImage(
            f"That image is {w}x{h} pixels; its long side may be at most "
            f"{limits.max_aspect:g} times its short side."
        )


def _decode(im: Image.Image) -> None:
    """Decode the pixels; any error refuses the image.

    Pillow clears its tile list before it reports a decoder error, so a second load() "succeeds"
    on the half-decoded picture: this must be the first thing that can decode, never a metadata
    read inside a broad except (PNG's getexif() loads the whole image to find a late eXIf chunk).
    """
    try:
        im.load()
    except Exception:
        raise InvalidImage(DAMAGED) from None


def _orientation(im: Image.Image) -> int:
    """The EXIF (or XMP) orientation, 1 when absent or nonsense. Call it on a decoded image, or
    a JPEG (whose EXIF is in the header): then an error here is only about the metadata."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # a malformed EXIF block is ignored: it is stripped anyway
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _is_animated(im: Image.Image) -> bool:
    """Whether there is more than one frame; looks at frame 1's header at most, never decodes it."""
    try:
        return bool(getattr(im, "is_animated", False))
    except Exception:  # GIF reads past frame 0's data to find frame 1: damage shows here
        raise InvalidImage(DAMAGED) from None


def _turned_by_decoder(im: Image.Image) -> bool:
    """Whether decoding will itself turn the picture upright: Pillow's TIFF loader transposes
    by the Orientation tag and then deletes it; pillow-heif applies the HEIF transforms at open.
    Read from the header, before the decode."""
    tags = getattr(im, "tag_v2", None)
    tiff = tags.get(0x0112, 1) if tags is not None else 1
    heif = im.info.get("original_orientation") or 1
    return tiff not in (1, None) or heif != 1


def _first_frame_change(source_format: str) -> str:
    if source_format == "TIFF":
        return "first page of a multi-page TIFF"
    return "first frame of an animation"


def _has_metadata(im: Image.Image) -> bool:
    if any(key not in _ENCODING_KEYS and value for key, value in im.info.items()):
        return True
    tags = getattr(im, "tag_v2", None)  # TIFF
    return tags is not None and any(tag in tags for tag in _TIFF_METADATA_TAGS)


def _check_ratio(aspect_ratio: str | None) -> None:
    if aspect_ratio is not None and aspect_ratio not in ASPECT_RATIOS:
        raise InvalidRequest(
            f"Aspect ratio {aspect_ratio!r} is not supported; use one of {', '.join(ASPECT_RATIOS)}."
        )


def prepare(data: bytes, *, aspect_ratio: str | None, limits: IntakeLimits) -> PreparedImage:
    """Check, decode, orient, crop, downscale and re-encode one input image (blocking: run off
    the event loop). Raises InvalidImage with one sentence when the image cannot be used."""
    return _prepare(data, aspect_ratio=aspect_ratio, limits=limits, crop=True)


def _prepare(
    data: bytes,
    *,
    aspect_ratio: str | None,
    limits: IntakeLimits,
    crop: bool,
) -> PreparedImage:
    _check_ratio(aspect_ratio)
    if len(data) > limits.max_bytes:
        raise InvalidImage(
            f"That file is {_mb(len(data))}; the limit is {limits.max_bytes / 1e6:g} MB."
        )
    fmt = identify(data)
    im = _open(data, fmt, limits)
    try:
        return _process(im, data, aspect_ratio, limits, crop)
    finally:
        im.close()


def _process(
    im: Image.Image,
    data: bytes,
    aspect_ratio: str | None,
    limits: IntakeLimits,
    crop: bool,
) -> PreparedImage:
    source_format = im.format or "unknown"
    _check_geometry(im.size, limits)
    changes: list[str] = []
    if source_format not in _BACKEND_FORMATS:
        changes.append(f"converted from {source_format}")
    if _is_animated(im):
        try:
            im.seek(0)  # frame 0 only: later frames are never decoded
        except Exception:
            raise InvalidImage(DAMAGED) from None
        changes.append(_first_frame_change(source_format))
    turned = _turned_by_decoder(im)
    if source_format not in _DRAFTABLE:
        _decode(im)  # before any metadata read, so no decode error can be swallowed there
    # The size as decoded (TIFF and HEIF come out upright already), else the header's.
    source_size = im.size
    orientation = _orientation(im)
    if orientation != 1 or turned:
        changes.append("rotated")

    # Geometry in upright coordinates, then mapped to the file's stored orientation.
    upright = geometry.stored(source_size, orientation)
    ratio = aspect_ratio
    if ratio is None and crop and limits.auto_aspect:
        ratio = geometry.nearest_ratio(*upright, ratios=limits.ratios)
    if not crop:
        ratio = None
    cw, ch = geometry.crop_size(*upright, ratio) if ratio else upright
    if min(cw, ch) < limits.min_side:
        raise InvalidImage(
            f"That image is {upright[0]}x{upright[1]} pixels; cropped to {ratio} it would be "
            f"{cw}x{ch}, under the {limits.min_side} pixels a side minimum."
        )
    out_w, out_h = geometry.fit_within(cw, ch, limits.max_side)

    if source_format in _DRAFTABLE:
        # Draft before load: decode straight at the smallest DCT scale that still covers the
        # output. The request is for the whole stored image, hence the scaling by the crop.
        sw, sh = source_size
        scw, sch = geometry.stored((cw, ch), orientation)
        sow, soh = geometry.stored((out_w, out_h), orientation)
        needed = (math.ceil(sw * sow / scw), math.ceil(sh * soh / sch))
        im.draft(None, geometry.jpeg_draft_request(source_size, needed, limits.draft_slack))
    _decode(im)
    info = dict(im.info)
    if _has_metadata(im):
        changes.append("metadata stripped")

    frame, converted = modes.before_resize(im)
    if converted or im.mode == "CMYK":
        changes.append(f"converted from {converted or im.mode}")

    # Crop and downscale in one resample, in stored (drafted) coordinates.
    dw, dh = frame.size
    fx, fy = dw / source_size[0], dh / source_size[1]
    scw, sch = geometry.stored((cw, ch), orientation)
    box_w, box_h = round(scw * fx), round(sch * fy)
    box_w, box_h = max(1, box_w), max(1, box_h)
    box = geometry.centre_box(dw, dh, box_w, box_h)
    upright_box = geometry.stored((box_w, box_h), orientation)
    target = geometry.stored(geometry.fit_within(*upright_box, limits.max_side), orientation)
    if (cw, ch) != upright:
        changes.append(f"cropped to {ratio}")
    if target != (box_w, box_h):
        frame = frame.resize(target, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
    elif box != (0, 0, dw, dh):
        frame = frame.crop(box)
    if max(target) < max(cw, ch):
        changes.append(f"downscaled from {cw}x{ch}")

    frame, profiled = modes.to_srgb(frame, info.get("icc_profile"))
    if profiled:
        changes.append("colour profile converted to sRGB")
    if orientation != 1:
        frame = frame.transpose(geometry.ORIENTATION_TRANSPOSE[orientation])

    alpha = modes.has_transparency(frame)
    if alpha:
        frame = modes.clear_hidden_colour(frame)
        changes.append("transparency kept")
    elif frame.mode != "RGB":
        frame = frame.convert("RGB")
    encoded, fmt, final, notes = encode_under(frame, limits.backend_max_bytes, alpha=alpha)
    changes.extend(notes)
    return PreparedImage(
        image=EncodedImage(encoded, fmt, final.width, final.height),
        aspect_ratio=ratio,
        source_format=source_format,
        source_size=geometry.stored(source_size, orientation),
        changes=tuple(changes),
        source_bytes=len(data),
    )


def prepare_style_refs(datas: Sequence[bytes], limits: IntakeLimits) -> list[PreparedImage]:
    """Prepare style reference images: at most 4, never cropped, together under 10 MB."""
    if len(datas) > MAX_STYLE_REFS:
        raise InvalidImage(
            f"You sent {len(datas)} style reference images; the limit is {MAX_STYLE_REFS}."
        )
    budget = min(limits.backend_max_bytes, MAX_REFS_BYTES)
    prepared = [
        _prepare(d, aspect_ratio=None, limits=replace(limits, backend_max_bytes=budget), crop=False)
        for d in datas
    ]
    total = sum(len(p.image.data) for p in prepared)
    if total < MAX_REFS_BYTES:
        return prepared
    # Over the joint budget: give each image a share proportional to its size (with 5% room)
    # and encode again; the encoder steps quality then size until each share is met.
    shrunk = []
    for d, p in zip(datas, prepared, strict=True):
        share = int(MAX_REFS_BYTES * 0.95 * len(p.image.data) / total)
        shrunk.append(
            _prepare(
                d, aspect_ratio=None, limits=replace(limits, backend_max_bytes=share), crop=False
            )
        )
    total = sum(len(p.image.data) for p in shrunk)
    if total >= MAX_REFS_BYTES:
        raise InvalidImage(
            f"The style reference images are {_mb(total)} together after preparation; "
            f"the limit is {MAX_REFS_BYTES / 1e6:g} MB."
        )
    return shrunk

"""Identify an upload by its content and refuse everything but the accepted formats, by name."""

from __future__ import annotations

import io
import itertools
import logging
import re
import threading
import warnings
from collections.abc import Sequence

from PIL import Image, features

from bot.errors import InvalidImage
from bot.media import sniff_format

log = logging.getLogger(__name__)

# Formats Pillow may decode for a member's input. GIF and AVIF: first frame; TIFF: first page
# (see docs/intake.md). HEIF joins them when the optional pillow-heif is installed.
ACCEPTED = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
# What backends return and the bot stores and posts: nothing else is decoded on that side.
RESULT_FORMATS = ("JPEG", "PNG", "WEBP")
SEND = "send a JPEG, PNG or WebP"
# The README's words: the extra installed from the checkout.
HEIF_EXTRA = "pip install '.[heif]'"

# catch_warnings() swaps the process-wide filter list; serialise our (header-parse-long) use.
_OPEN_LOCK = threading.Lock()

# Magic bytes of formats we refuse, so the refusal can name what was sent.
_REFUSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"8BPS", "a Photoshop (PSD) file"),
    (b"%PDF", "a PDF"),
    (b"%!PS", "a PostScript (EPS) file"),
    (b"\xc5\xd0\xd3\xc6", "a PostScript (EPS) file"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000"),
    (b"SIMPLE  =", "a FITS file"),
    (b"\x00\x00\x01\x00", "an icon (ICO)"),
    (b"qoif", "a QOI"),
)
# Accepted formats Pillow's own plugins know by their first bytes (JPEG/PNG/WebP/GIF: media.py).
_INPUT_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)
# ISO-BMFF brands (the ftyp box): AVIF is Pillow's own; HEIC/HEIF needs pillow-heif.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})


class UnreadableFormat(InvalidImage):
    """An image in a format this installation cannot decode (HEIC without pillow-heif, AVIF
    without Pillow's AVIF support); `sentence(reader)` words it for a surface."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(self.sentence("this server"))  # the members' words (Discord)

    def sentence(self, reader: str) -> str:
        """The refusal, with `reader` (what cannot read it) as the surface says it."""
        article = "an" if self.kind[:1] in "AEIOU" else "a"
        return f"That file is {article} {self.kind}, which {reader} cannot read; {SEND}."


_HEIF_LOCK = threading.Lock()
_heif_registered: bool | None = None  # None: not tried yet


def _brands(head: bytes) -> tuple[bytes, frozenset[bytes]]:
    """The major brand of an ISO-BMFF ftyp box and its compatible brands."""
    size = int.from_bytes(head[:4], "big")
    end = min(max(size, 16), len(head), 4096)
    compatible = frozenset(head[i : i + 4] for i in range(16, end - 3, 4))
    return head[8:12], compatible


def _bmff_kind(head: bytes) -> str | None:
    """AVIF, HEIC or HEIF for an ISO-BMFF image file, else None."""
    if head[4:8] != b"ftyp":
        return None
    major, compatible = _brands(head)
    if major in _AVIF_BRANDS:
        return "AVIF"
    if major in _HEIC_BRANDS:
        return "HEIC"
    if major in _HEIF_BRANDS:
        if compatible & _AVIF_BRANDS:
            return "AVIF"
        return "HEIC" if compatible & _HEIC_BRANDS else "HEIF"
    return None


def heif_available() -> bool:
    """Whether pillow-heif is installed; its opener is registered with Pillow on first use."""
    global _heif_registered
    with _HEIF_LOCK:
        if _heif_registered is None:
            try:
                import pillow_heif  # optional extra: remixbot[heif]
            except ImportError:
                _heif_registered = False
            else:
                # No thumbnails or auxiliary images: only the primary picture is ever decoded.
                pillow_heif.register_heif_opener(thumbnails=False, depth_images=False)
                _heif_registered = True
        return _heif_registered


def _input_formats() -> tuple[str, ...]:
    return (*ACCEPTED, "HEIF") if _heif_registered else ACCEPTED


def _sniff_input(data: bytes) -> str | None:
    """The accepted format the bytes are, by magic bytes (no decoder runs), or None."""
    fmt = sniff_format(data)
    if fmt is not None:
        return fmt
    head = data[:4096]
    for magic, name in _INPUT_MAGIC:
        if head.startswith(magic):
            return name
    kind = _bmff_kind(head)
    if kind == "AVIF":
        if features.check("avif"):
            return "AVIF"
        log.warning("an AVIF upload was refused: this Pillow was built without AVIF support")
        raise UnreadableFormat("AVIF")
    if kind in ("HEIC", "HEIF"):
        if heif_available():
            return "HEIF"
        log.warning("a %s upload was refused: to accept them, %s", kind, HEIF_EXTRA)
        raise UnreadableFormat(kind)
    return None


def _text_kind(head: bytes) -> str | None:
    """Name SVG and HTML files, which are text pretending to be images."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in text[:4096]:
        return "svg"
    if (
        text.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))
        or b"<html" in text[:1024]
    ):
        return "html"
    return None


def identify(data: bytes) -> str:
    """Return the accepted format the bytes are (JPEG, PNG, WEBP, GIF, BMP, TIFF, AVIF, HEIF),
    or refuse in one sentence that names what was sent."""
    if not data:
        raise InvalidImage(f"That file is empty, not an image; {SEND}.")
    fmt = _sniff_input(data)
    if fmt == "JPEG":
        check_jpeg_scans(data)
    if fmt is not None:
        return fmt
    head = data[:4096]
    for magic, name in _REFUSED_MAGIC:
        if head.startswith(magic):
            raise InvalidImage(f"That file is {name}; {SEND}.")
    kind = _text_kind(head)
    if kind == "svg":
        raise InvalidImage(f"That file is an SVG drawing; {SEND}.")
    if kind == "html":
        raise InvalidImage(f"That file is a web page (HTML), not an image; {SEND}.")
    raise InvalidImage(f"That file is not an image; {SEND}.")


# Progressive JPEG encoders write about 10-20 scans; libjpeg decodes every scan across the whole
# image (draft() does not help) and only warns about a repeated one, so a small file with
# thousands of scans costs minutes of CPU. Count start-of-scan markers before decoding:
# byte stuffing (FF 00) means FF DA occurs only as a marker (an EXIF thumbnail adds a few).
MAX_JPEG_SCANS = 100


# Searched with re, not bytes.count: measured ~3x faster on a 4.8 MB camera photo (1.3 ms
# against 3.6 ms), and the search stops at the first marker over the limit.
_START_OF_SCAN = re.compile(b"\xff\xda")


def check_jpeg_scans(data: bytes, limit: int = MAX_JPEG_SCANS) -> None:
    """Refuse a JPEG with more start-of-scan markers than any real encoder writes."""
    over = next(itertools.islice(_START_OF_SCAN.finditer(data), limit, None), None)
    if over is None:
        return
    scans = data.count(b"\xff\xda")  # only to name the number in the refusal
    raise InvalidImage(
        f"That JPEG has {scans} scans; the limit is {limit}. Save it again as a normal JPEG."
    )


def open_restricted(data: bytes, formats: Sequence[str] | None = None) -> Image.Image:
    """Image.open limited to `formats` (default: every accepted input format), with
    DecompressionBombWarning raised as an error. Lazy: only the header is read.

    The warning filter is changed only inside this call (under a lock, for the header parse),
    never for the process.
    """
    allowed = list(formats) if formats is not None else list(_input_formats())
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=allowed)

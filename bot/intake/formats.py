"""Identify an upload by its content and refuse everything but the accepted formats, by name."""

from __future__ import annotations

import io
import threading
import warnings

from PIL import Image

from bot.errors import InvalidImage
from bot.media import sniff_format

# Formats Pillow may decode for us. GIF: first frame only (see docs/intake.md).
ACCEPTED = ("JPEG", "PNG", "WEBP", "GIF")
SEND = "send a JPEG, PNG or WebP"

# catch_warnings() swaps the process-wide filter list; serialise our (header-parse-long) use.
_OPEN_LOCK = threading.Lock()

# Magic bytes of formats we refuse, so the refusal can name what was sent.
_REFUSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "a TIFF"),
    (b"MM\x00*", "a TIFF"),
    (b"8BPS", "a Photoshop (PSD) file"),
    (b"%PDF", "a PDF"),
    (b"%!PS", "a PostScript (EPS) file"),
    (b"\xc5\xd0\xd3\xc6", "a PostScript (EPS) file"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000"),
    (b"SIMPLE  =", "a FITS file"),
    (b"\x00\x00\x01\x00", "an icon (ICO)"),
    (b"qoif", "a QOI"),
    (b"BM", "a BMP"),
)
_HEIF_BRANDS = {
    b"heic": "a HEIC",
    b"heix": "a HEIC",
    b"hevc": "a HEIC",
    b"heim": "a HEIC",
    b"heis": "a HEIC",
    b"mif1": "a HEIF",
    b"msf1": "a HEIF",
    b"avif": "an AVIF",
    b"avis": "an AVIF",
}


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
    """Return the accepted format the bytes are (JPEG, PNG, WEBP, GIF), or refuse in one sentence."""
    if not data:
        raise InvalidImage("That file is empty, not an image.")
    fmt = sniff_format(data)
    if fmt == "JPEG":
        check_jpeg_scans(data)
    if fmt in ACCEPTED:
        return fmt
    head = data[:4096]
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        raise InvalidImage(f"That file is {_HEIF_BRANDS[head[8:12]]}; {SEND}.")
    for magic, name in _REFUSED_MAGIC:
        if head.startswith(magic):
            raise InvalidImage(f"That file is {name}; {SEND}.")
    kind = _text_kind(head)
    if kind == "svg":
        raise InvalidImage(f"That file is an SVG drawing; {SEND}.")
    if kind == "html":
        raise InvalidImage("That file is a web page (HTML), not an image.")
    raise InvalidImage("That file is not an image.")


# Progressive JPEG encoders write about 10-20 scans; libjpeg decodes every scan across the whole
# image (draft() does not help) and only warns about a repeated one, so a small file with
# thousands of scans costs minutes of CPU. Count start-of-scan markers before decoding:
# byte stuffing (FF 00) means FF DA occurs only as a marker (an EXIF thumbnail adds a few).
MAX_JPEG_SCANS = 100


def check_jpeg_scans(data: bytes, limit: int = MAX_JPEG_SCANS) -> None:
    """Refuse a JPEG with more start-of-scan markers than any real encoder writes."""
    scans = data.count(b"\xff\xda")
    if scans > limit:
        raise InvalidImage(
            f"That JPEG has {scans} scans; the limit is {limit}. Save it again as a normal JPEG."
        )


def open_restricted(data: bytes) -> Image.Image:
    """Image.open limited to the accepted formats, DecompressionBombWarning raised as an error.

    The warning filter is changed only inside this call (under a lock, for the header parse),
    never for the process.
    """
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=list(ACCEPTED))

"""A corpus of good, odd and hostile images, generated with Pillow (and a little byte surgery).

Every function is deterministic and cached, so tests and bench/intake.py share the same bytes.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib

from PIL import Image, ImageCms, ImageDraw

# Upright marker colour used to check orientation: the top-left quarter of the upright picture.
MARK = (255, 0, 0)
# Exif tag numbers.
ORIENTATION = 0x0112
GPS_IFD = 0x8825


def _save(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


@functools.cache
def photo(width: int, height: int, seed: int = 1, grain: int = 18) -> Image.Image:
    """A photo-like RGB picture: smooth gradients, soft shapes and sensor-like grain."""
    rnd = random.Random(seed)
    small = (max(8, width // 8), max(8, height // 8))
    layers = [
        Image.linear_gradient("L").resize(small),
        Image.radial_gradient("L").resize(small),
        Image.linear_gradient("L").rotate(90).resize(small),
    ]
    base = Image.merge("RGB", layers)
    draw = ImageDraw.Draw(base)
    for _ in range(40):
        x, y = rnd.randrange(small[0]), rnd.randrange(small[1])
        r = rnd.randrange(2, max(3, small[0] // 4))
        colour = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        draw.ellipse((x, y, x + r, y + r), fill=colour)
    base = base.resize((width, height), Image.Resampling.BICUBIC)
    if grain:
        noise = Image.effect_noise((width, height), grain).convert("RGB")
        base = Image.blend(base, noise, 0.12)
    return base


def jpeg(width: int = 1200, height: int = 900, quality: int = 90, **params: object) -> bytes:
    """A plain photo-like JPEG."""
    return _save(photo(width, height), "JPEG", quality=quality, **params)


def png(width: int = 1200, height: int = 900) -> bytes:
    """A plain photo-like PNG."""
    return _save(photo(width, height), "PNG")


# --- not images, or refused formats ------------------------------------------------------------


def empty() -> bytes:
    return b""


def text_named_png() -> bytes:
    """What a user gets when they rename notes.txt to notes.png."""
    return b"Shopping list:\n- milk\n- eggs\n" * 20


def random_bytes() -> bytes:
    return random.Random(7).randbytes(4096)


def svg() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
        b'<circle cx="50" cy="50" r="40" fill="red"/></svg>\n'
    )


def html() -> bytes:
    return b"<!DOCTYPE html>\n<html><head><title>cat.jpg</title></head><body>404</body></html>\n"


@functools.cache
def psd_header() -> bytes:
    """The first bytes of a Photoshop file: enough to be named, never decoded."""
    return b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 48, 64, 8, 3) + b"\x00" * 64


# --- converted formats (TIFF, BMP, AVIF, HEIC) ----------------------------------------------------


@functools.cache
def tiff() -> bytes:
    return _save(photo(64, 48), "TIFF")


@functools.cache
def bmp() -> bytes:
    return _save(photo(64, 48), "BMP")


@functools.cache
def oriented_tiff(orientation: int = 6, width: int = 300, height: int = 400) -> bytes:
    """An LZW TIFF whose Orientation tag (274) makes the stored picture upright width x height."""
    im = upright_marked(width, height)
    if orientation != 1:
        im = im.transpose(_STORE[orientation])
    return _save(im, "TIFF", compression="tiff_lzw", tiffinfo={ORIENTATION: orientation})


@functools.cache
def multipage_tiff(pages: int = 3) -> bytes:
    """Page 0 is red, every later page blue (and larger, so using one would show in the size)."""
    first = Image.new("RGB", (160, 120), MARK)
    later = [Image.new("RGB", (320, 240), (0, 0, 255)) for _ in range(pages - 1)]
    return _save(first, "TIFF", save_all=True, append_images=later)


@functools.cache
def avif_with_alpha() -> bytes:
    """The picture of rgba_hidden_colour_png() as an AVIF with alpha."""
    return _save(hidden_colour_rgba(), "AVIF", quality=90)


@functools.cache
def heic() -> bytes:
    """An iPhone-style HEIC (brand heic), written by pillow-heif's encoder."""
    from pillow_heif import from_pillow  # test extra: remixbot[heif]

    heif = from_pillow(photo(320, 240))
    buf = io.BytesIO()
    heif.save(buf, quality=85)
    return buf.getvalue()


# --- damaged and hostile ------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk after the signature."""
    chunks, i = [], 8
    while i + 8 <= len(data):
        length = struct.unpack(">I", data[i : i + 4])[0]
        chunks.append((data[i + 4 : i + 8], data[i + 8 : i + 8 + length]))
        i += 12 + length
    return chunks


def _png_with_idat(data: bytes, idat: bytes) -> bytes:
    """The same PNG with its pixel stream replaced by `idat` in one chunk, every CRC correct."""
    chunks = _png_chunks(data)
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        if kind == b"IDAT":
            if idat:
                out += _chunk(b"IDAT", idat)
                idat = b""
        else:
            out += _chunk(kind, body)
    return out


@functools.cache
def damaged_png() -> bytes:
    """Header and chunk structure valid (CRCs recomputed) but the middle of the pixel stream
    scrambled: Pillow's decoder fails, and a swallowed first failure makes a second load pass."""
    data = png(400, 300)
    stream = bytearray(b"".join(b for k, b in _png_chunks(data) if k == b"IDAT"))
    middle = len(stream) // 2
    for i in range(middle, middle + 64):
        stream[i] ^= 0x5A
    return _png_with_idat(data, bytes(stream))


@functools.cache
def png_cut_zlib_stream() -> bytes:
    """A valid PNG structure whose zlib stream stops halfway (chunk length and CRC fixed up)."""
    data = png(400, 300)
    stream = b"".join(b for k, b in _png_chunks(data) if k == b"IDAT")
    return _png_with_idat(data, stream[: len(stream) // 2])


@functools.cache
def truncated_jpeg() -> bytes:
    """A JPEG cut in half: header intact (verify() passes), scan data missing."""
    data = jpeg(800, 600)
    return data[: len(data) // 2]


@functools.cache
def truncated_png() -> bytes:
    data = png(400, 300)
    return data[: len(data) // 2]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


@functools.cache
def png_bomb(side: int = 20000) -> bytes:
    """A real 1-bit PNG declaring side x side (400 MP) whose zeros compress to ~50 KB."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(side)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


@functools.cache
def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) is rewritten to declare width x height."""
    data = bytearray(jpeg(64, 48))
    i = 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF marker")


@functools.cache
def bmp_declaring(width: int, height: int) -> bytes:
    """A small BMP whose header is rewritten to declare width x height (the pixels are missing)."""
    data = bytearray(bmp())
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


@functools.cache
def tiff_declaring(width: int, height: int) -> bytes:
    """A small little-endian TIFF whose ImageWidth/ImageLength tags declare width x height."""
    data = bytearray(tiff())
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack("<I", data[4:8])[0]
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    for n in range(count):
        entry = ifd + 2 + 12 * n
        tag = struct.unpack("<H", data[entry : entry + 2])[0]
        if tag in (256, 257):  # written as LONG, so any size fits
            data[entry + 2 : entry + 12] = struct.pack(
                "<HII", 4, 1, width if tag == 256 else height
            )
    return bytes(data)


def _with_ispe(data: bytes, width: int, height: int) -> bytes:
    """An ISO-BMFF image (AVIF, HEIC) whose image-size property declares width x height."""
    out = bytearray(data)
    at = out.find(b"ispe")
    assert at > 0, "no ispe box"
    out[at + 8 : at + 16] = struct.pack(">II", width, height)  # after version and flags
    return bytes(out)


@functools.cache
def avif_declaring(width: int, height: int) -> bytes:
    """A small AVIF whose header declares width x height (the AV1 data is 64x48)."""
    return _with_ispe(_save(photo(64, 48), "AVIF"), width, height)


@functools.cache
def heic_declaring(width: int, height: int) -> bytes:
    """A small HEIC whose header declares width x height."""
    return _with_ispe(heic(), width, height)


@functools.cache
def png_huge_text(size: int = 8 * 1000 * 1000) -> bytes:
    """A small PNG carrying a tEXt chunk of `size` bytes before the pixels."""
    data = png(200, 150)
    text = _chunk(b"tEXt", b"Comment\x00" + b"A" * size)
    return data[:33] + text + data[33:]  # after the 8-byte signature + 25-byte IHDR chunk


@functools.cache
def png_ztxt_bomb() -> bytes:
    """A PNG with a zTXt chunk that inflates to 64 MB."""
    data = png(200, 150)
    body = b"Comment\x00\x00" + zlib.compress(b"B" * (64 * 1024 * 1024), 9)
    return data[:33] + _chunk(b"zTXt", body) + data[33:]


# --- modes -------------------------------------------------------------------------------------


@functools.cache
def cmyk_jpeg() -> bytes:
    """A CMYK JPEG, left half pure cyan+yellow (= red-ish in naive conversion), right half white."""
    im = Image.new("CMYK", (320, 240), (0, 0, 0, 0))
    im.paste((0, 255, 255, 0), (0, 0, 160, 240))
    return _save(im, "JPEG", quality=95)


@functools.cache
def gray16_png(value: int = 40000) -> bytes:
    """A 16-bit greyscale PNG of one value (40000 must come out mid-grey, not clipped white)."""
    return _save(Image.new("I;16", (256, 192), value), "PNG")


@functools.cache
def palette_transparent_png() -> bytes:
    """A palette PNG whose index 0 is transparent (left half) and index 1 is blue (right half)."""
    im = Image.new("P", (200, 100), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    im.paste(1, (100, 0, 200, 100))
    return _save(im, "PNG", transparency=0)


@functools.cache
def palette_opaque_gif() -> bytes:
    im = photo(300, 200).convert("P", palette=Image.Palette.ADAPTIVE)
    return _save(im, "GIF")


@functools.cache
def la_png() -> bytes:
    """Grey + alpha: left half transparent, right half opaque grey 128."""
    im = Image.new("LA", (200, 100), (128, 255))
    im.paste((200, 0), (0, 0, 100, 100))
    return _save(im, "PNG")


def hidden_colour_rgba() -> Image.Image:
    """RGBA: left half fully transparent but hiding pure red; right half opaque green."""
    im = Image.new("RGBA", (200, 100), (0, 200, 0, 255))
    im.paste((255, 0, 0, 0), (0, 0, 100, 100))
    return im


@functools.cache
def rgba_hidden_colour_png() -> bytes:
    return _save(hidden_colour_rgba(), "PNG")


@functools.cache
def rgba_opaque_png() -> bytes:
    im = photo(300, 200).convert("RGBA")
    return _save(im, "PNG")


# --- animation ---------------------------------------------------------------------------------


def _frames(n: int, size: tuple[int, int] = (160, 120)) -> list[Image.Image]:
    """Frame 0 is red; every later frame is blue (so frame 0 is recognisable)."""
    return [Image.new("RGB", size, MARK if i == 0 else (0, 0, 255)) for i in range(n)]


@functools.cache
def animated_gif(n: int = 150) -> bytes:
    frames = _frames(n)
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)


@functools.cache
def animated_webp(n: int = 150) -> bytes:
    frames = _frames(n)
    return _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=40)


@functools.cache
def apng(n: int = 150) -> bytes:
    frames = _frames(n)
    return _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=40)


# --- geometry and metadata ---------------------------------------------------------------------

# The transpose that turns the upright picture into what the file stores for each orientation
# (the inverse of what a viewer applies).
_STORE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright_marked(width: int, height: int) -> Image.Image:
    """An upright picture: grey, with a red top-left quarter (the orientation marker)."""
    im = Image.new("RGB", (width, height), (128, 128, 128))
    im.paste(MARK, (0, 0, width // 2, height // 2))
    return im


@functools.cache
def oriented_jpeg(orientation: int, width: int = 1536, height: int = 2048) -> bytes:
    """A JPEG that shows an upright width x height picture once EXIF `orientation` is applied."""
    im = upright_marked(width, height)
    if orientation != 1:
        im = im.transpose(_STORE[orientation])
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return _save(im, "JPEG", quality=90, exif=exif)


@functools.cache
def extreme_aspect_png(width: int = 10000, height: int = 10) -> bytes:
    return _save(Image.new("RGB", (width, height), (10, 20, 30)), "PNG")


@functools.cache
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _private_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Phone 15 Pro"  # Model
    exif[0x0131] = "SecretEditor 1.0"  # Software
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.0)
    gps[3] = "E"
    gps[4] = (2.0, 17.0, 40.0)
    return exif


@functools.cache
def jpeg_with_private_metadata() -> bytes:
    """GPS position, camera make/model, a comment, XMP and an ICC profile."""
    return _save(
        photo(800, 600),
        "JPEG",
        quality=90,
        exif=_private_exif(),
        comment=b"taken at home, 12 Secret Street",
        icc_profile=srgb_icc(),
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">SecretCreator</x:xmpmeta>',
    )


@functools.cache
def png_with_private_metadata() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Secret Person")
    info.add_itxt("Description", "12 Secret Street", zip=True)
    return _save(photo(400, 300), "PNG", pnginfo=info, exif=_private_exif())


@functools.cache
def webp_with_private_metadata() -> bytes:
    return _save(
        photo(400, 300),
        "WEBP",
        quality=90,
        exif=_private_exif(),
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">SecretCreator</x:xmpmeta>',
    )


@functools.cache
def noise_png(width: int, height: int, seed: int = 3) -> bytes:
    """A PNG of pure noise: about 3 bytes per pixel whatever the compressor does."""
    raw = random.Random(seed).randbytes(width * height * 3)
    return _save(Image.frombytes("RGB", (width, height), raw), "PNG", compress_level=1)


@functools.cache
def smooth_jpeg(width: int, height: int) -> bytes:
    """A cheap-to-make large JPEG (a gradient): for geometry tests where content does not matter."""
    im = Image.linear_gradient("L").resize((width, height), Image.Resampling.NEAREST)
    return _save(im.convert("RGB"), "JPEG", quality=90)


@functools.cache
def jpeg_with_garbage_icc() -> bytes:
    """An ICC profile that is not one: must be ignored (and stripped), not crash the intake."""
    return _save(photo(320, 240), "JPEG", quality=90, icc_profile=b"not a profile" * 50)


@functools.cache
def xmp_oriented_jpeg() -> bytes:
    """Orientation 6 given only in XMP (no EXIF), as some editors write it."""
    im = upright_marked(300, 400).transpose(_STORE[6])
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    return _save(im, "JPEG", quality=90, xmp=xmp)

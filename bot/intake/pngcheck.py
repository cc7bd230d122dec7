"""Prove a PNG result whole while it downloads, so the decode after the download can be skipped.

Decoding a result after its last byte arrived put ~17 ms of CPU per 1152x864 PNG (1.4 MB)
behind the download: four results, ~40 ms on two cores. `PngStream` is fed the bytes in the
download's writer thread as they arrive and does the part of a decode that can find damage:
every chunk's CRC, the zlib stream inflated to its end (zlib checks its Adler-32) giving exactly
the rows the header promises, and a valid filter type at the start of each row. Rows are not
unfiltered or stored (arithmetic that cannot fail) and no image is allocated: ~14 ms of CPU
instead of ~17, spent while the other bytes still arrive.

It only ever vouches. Whatever it cannot vouch for (damaged, interlaced, a palette without
PLTE, chunks after the pixels, over the pixel cap) is decoded whole by `check_result` as
before, so what is refused, and with which sentence, stays the decoder's decision; a vouched
PNG still has its header read by Pillow there. `tests/test_intake_pngcheck.py` pins it: on
whole, cut and scrambled files the verdict with the stream's answer is the decoder's.
"""

from __future__ import annotations

import struct
import zlib

from bot.intake.verify import RESULT_MAX_PIXELS

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Samples per pixel and the bit depths PNG allows, by colour type (PNG spec, table 11.1).
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# Inflated output is counted and dropped in pieces of this size: memory stays flat whatever the
# image (a zlib bomb stops at the first byte past the header's promise).
_PIECE = 256 * 1024
_MAX_FILTER = 4  # None, Sub, Up, Average, Paeth


class PngStream:
    """Fed a PNG's bytes in order (blocking: call it off the event loop); `whole` is True only
    when every byte up to IEND was seen and found sound. It never raises."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self.size: tuple[int, int] | None = None
        self._pending = bytearray()  # bytes of a signature, chunk head or CRC not yet complete
        self._need = len(SIGNATURE)
        self._state = "signature"
        self._type = b""
        self._left = 0  # body bytes of the current chunk still to come
        self._crc = 0
        self._palette = False
        self._colour = -1
        self._idat = "before"  # before, in, after the run of IDAT chunks
        self._inflate = zlib.decompressobj()
        self._stride = 0
        self._expected = 0
        self._inflated = 0
        self._ended = False
        self._doubt = False  # something not vouched for: the full decode decides

    @property
    def whole(self) -> bool:
        """True when the PNG ended (IEND) with every check passed."""
        return self._ended and not self._doubt

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the file."""
        if self._doubt or self._ended:
            return  # after IEND anything may follow; decoders stop there too
        try:
            self._feed(memoryview(data))
        except (ValueError, struct.error, zlib.error):
            self._doubt = True

    def _feed(self, data: memoryview) -> None:
        while data and not self._ended:
            if self._state == "body":
                take = data[: self._left]
                data = data[len(take) :]
                self._body(take)
                continue
            take = data[: self._need - len(self._pending)]
            data = data[len(take) :]
            self._pending += take
            if len(self._pending) == self._need:
                whole, self._pending = bytes(self._pending), bytearray()
                self._step(whole)

    def _step(self, part: bytes) -> None:
        """A complete signature, chunk head or CRC."""
        if self._state == "signature":
            if part != SIGNATURE:
                raise ValueError("not a PNG")
            self._expect_head()
        elif self._state == "head":
            length, kind = struct.unpack(">I4s", part)
            if length > 0x7FFFFFFF:
                raise ValueError("chunk length")
            self._begin(kind, length)
            self._crc = zlib.crc32(kind)
            if kind == b"IHDR":
                # Short enough to take whole: read as a "CRC-sized" piece of 13 bytes.
                self._state, self._need = "ihdr", length
                if length != 13:
                    raise ValueError("IHDR length")
            elif length:
                self._state, self._left = "body", length
            else:
                self._state, self._need = "crc", 4
        elif self._state == "ihdr":
            self._crc = zlib.crc32(part, self._crc)
            self._header(part)
            self._state, self._need = "crc", 4
        else:  # crc
            if struct.unpack(">I", part)[0] != self._crc:
                raise ValueError("CRC")
            if self._type == b"IEND":
                self._end()
            else:
                self._expect_head()

    def _expect_head(self) -> None:
        self._state, self._need = "head", 8

    def _begin(self, kind: bytes, length: int) -> None:
        """Chunk order: IHDR first, one run of IDAT, nothing but IEND after it."""
        first = self._type == b""
        self._type = kind
        if first != (kind == b"IHDR"):
            raise ValueError("IHDR must come first, once")
        if kind == b"IDAT":
            if self._idat == "after":
                raise ValueError("IDAT after the pixels")
            if self._idat == "before" and self._colour == 3 and not self._palette:
                raise ValueError("palette image without PLTE")
            self._idat = "in"
            return
        if self._idat == "in":
            self._idat = "after"
        if self._idat == "after" and kind != b"IEND":
            # Pillow reads these after the pixels (text, animation frames): let it judge them.
            raise ValueError("chunk after the pixels")
        if kind == b"PLTE":
            self._palette = True

    def _header(self, ihdr: bytes) -> None:
        width, height, depth, colour, compression, filtering, interlace = struct.unpack(
            ">IIBBBBB", ihdr
        )
        if depth not in _DEPTHS.get(colour, ()) or compression or filtering:
            raise ValueError("IHDR values")
        if interlace:
            raise ValueError("interlaced: seven passes, left to the decoder")
        if not width or not height or width * height > self.max_pixels:
            raise ValueError("size")
        self.size = (width, height)
        self._colour = colour
        self._stride = 1 + (width * _CHANNELS[colour] * depth + 7) // 8
        self._expected = self._stride * height

    def _body(self, part: memoryview) -> None:
        self._crc = zlib.crc32(part, self._crc)
        self._left -= len(part)
        if self._type == b"IDAT":
            self._pixels(part)
        if not self._left:
            self._state, self._need = "crc", 4

    def _pixels(self, compressed: memoryview | bytes) -> None:
        """Inflate, count the rows' bytes and check each row's filter type."""
        if self._inflate.eof:
            if compressed:
                raise ValueError("data after the zlib stream")
            return
        while compressed:
            piece = self._inflate.decompress(compressed, _PIECE)
            compressed = self._inflate.unconsumed_tail
            start = (-self._inflated) % self._stride
            if max(piece[start :: self._stride], default=0) > _MAX_FILTER:
                raise ValueError("filter type")
            self._inflated += len(piece)
            if self._inflated > self._expected:
                raise ValueError("more rows than the header says")
            if self._inflate.eof and (compressed or self._inflate.unused_data):
                raise ValueError("data after the zlib stream")

    def _end(self) -> None:
        if not self._inflate.eof or self._inflated != self._expected or self._idat == "before":
            raise ValueError("pixels missing")
        self._ended = True


def watch_result(fmt: str) -> PngStream | None:
    """A stream check for a result being downloaded, when its format has one (PNG)."""
    return PngStream(RESULT_MAX_PIXELS) if fmt == "PNG" else None

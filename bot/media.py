"""Encoded images as they pass between intake, backends, downloads and the publisher."""

from __future__ import annotations

from dataclasses import dataclass

FORMAT_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


def sniff_format(data: bytes) -> str | None:
    """Name the format from magic bytes (JPEG, PNG, WEBP, GIF), or None; never trusts names."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


@dataclass(frozen=True)
class EncodedImage:
    """Image bytes with their format (JPEG, PNG or WEBP) and pixel size."""

    data: bytes
    format: str
    width: int
    height: int

    @property
    def mime(self) -> str:
        """The MIME type of the format."""
        return FORMAT_MIME[self.format]

    @property
    def extension(self) -> str:
        """The usual file extension of the format, without a dot."""
        return FORMAT_EXT[self.format]

    def filename(self, stem: str = "image") -> str:
        """A file name with the right extension."""
        return f"{stem}.{self.extension}"

    def __repr__(self) -> str:  # never dump bytes into logs
        return f"EncodedImage({self.format}, {self.width}x{self.height}, {len(self.data)} bytes)"

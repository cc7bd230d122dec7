"""Fit result files into Discord messages: per-file and per-message byte caps, at most 10 files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from bot.errors import InvalidImage
from bot.intake import modes
from bot.intake.encode import encode_under
from bot.intake.formats import RESULT_FORMATS, open_restricted
from bot.media import EncodedImage

# Bytes kept free in every message for what surrounds the files in the multipart body: the
# payload_json part (content <= 2000 chars, embeds <= 6000 chars, components and the attachments
# array: tens of KB at worst after UTF-8 and JSON escaping) and ~300 B of boundary and part
# headers per file. 512 KiB is several times that worst case and costs 2% of 25 MiB: splitting
# one message early is cheap, a 413 after a paid generation is not.
MULTIPART_MARGIN = 512 * 1024
DISCORD_MESSAGE_LIMIT = 25 * 1024 * 1024
DISCORD_MAX_FILES = 10
# Results are 1-2K images; anything declaring more than this is not decoded (4 bytes a pixel).
MAX_RESULT_PIXELS = 50 * 1000 * 1000


@dataclass(frozen=True)
class UploadFile:
    """One file to attach to a message."""

    filename: str
    data: bytes

    def __repr__(self) -> str:  # never dump bytes into logs
        return f"UploadFile({self.filename!r}, {len(self.data)} bytes)"


def _reencode(file: UploadFile, cap: int) -> UploadFile:
    """Re-encode one image under cap bytes: quality steps, then downscale; never upscale."""
    try:
        with open_restricted(file.data, RESULT_FORMATS) as im:
            if im.width * im.height > MAX_RESULT_PIXELS:
                raise ValueError("too many pixels to re-encode")
            im.load()
            frame, _ = modes.before_resize(im)
            frame, _ = modes.to_srgb(frame, im.info.get("icc_profile"))
    except Exception:
        raise InvalidImage(
            f"{file.filename} is over the {cap / 2**20:.1f} MiB upload limit and is not an image "
            "that can be re-encoded."
        ) from None
    alpha = modes.has_transparency(frame)
    if not alpha and frame.mode != "RGB":
        frame = frame.convert("RGB")
    data, fmt, final, _ = encode_under(frame, cap + 1, alpha=alpha)
    image = EncodedImage(data, fmt, final.width, final.height)
    return UploadFile(image.filename(PurePath(file.filename).stem or "image"), image.data)


def _pack(files: list[UploadFile], budget: int, max_files: int) -> list[list[UploadFile]]:
    """Greedy in order: start a new message when the next file would not fit."""
    messages: list[list[UploadFile]] = []
    current: list[UploadFile] = []
    used = 0
    for f in files:
        if current and (len(current) >= max_files or used + len(f.data) > budget):
            messages.append(current)
            current, used = [], 0
        current.append(f)
        used += len(f.data)
    if current:
        messages.append(current)
    return messages


def fit_for_upload(
    files: Sequence[UploadFile],
    per_file_limit: int,
    per_message_limit: int = DISCORD_MESSAGE_LIMIT,
    max_files: int = DISCORD_MAX_FILES,
) -> list[list[UploadFile]]:
    """Split files into messages that Discord accepts, re-encoding only files over the limit.

    Order is kept. Every file is at most per_file_limit bytes; every message holds at most
    max_files files totalling at most per_message_limit - MULTIPART_MARGIN bytes. Blocking when
    something must be re-encoded: run off the event loop.
    """
    if per_message_limit <= MULTIPART_MARGIN * 2:
        raise ValueError(f"per_message_limit must be more than {MULTIPART_MARGIN * 2} bytes")
    budget = per_message_limit - MULTIPART_MARGIN
    cap = min(per_file_limit, budget)
    fitted = [f if len(f.data) <= cap else _reencode(f, cap) for f in files]
    messages = _pack(fitted, budget, max_files)
    if len(messages) > 1:
        # Same number of messages, files spread evenly (8 -> 4 + 4 rather than 7 + 1).
        even = _pack(fitted, budget, min(max_files, math.ceil(len(fitted) / len(messages))))
        if len(even) == len(messages):
            messages = even
    return messages

"""Wrap an input the bot itself prepared and stored earlier, as it is: no decode, no re-encode.

A reroll sends the parent's stored input again. Running `prepare` on it a second time would decode,
resize and re-encode it (losing quality with every hop) and give it a new content key. The bytes
were checked and cleaned when they first came in, so here only the header is read, for the format
and the pixel size the backends need.
"""

from __future__ import annotations

from bot.errors import InvalidImage
from bot.intake.formats import RESULT_FORMATS, open_restricted
from bot.intake.prepare import PreparedImage
from bot.media import EncodedImage, sniff_format


def load_prepared(data: bytes) -> PreparedImage:
    """The stored bytes unchanged in a PreparedImage (no changes lines); header read only."""
    fmt = sniff_format(data)
    if fmt not in RESULT_FORMATS:
        raise InvalidImage("The stored input image is not one the bot prepared; start a new remix.")
    try:
        with open_restricted(data, formats=(fmt,)) as im:
            width, height = im.size  # Image.open is lazy: only the header has been read
    except Exception:
        raise InvalidImage("The stored input image is damaged; start a new remix.") from None
    return PreparedImage(
        image=EncodedImage(data, fmt, width, height),
        aspect_ratio=None,  # the stored request already names the ratio it was sent with
        source_format=fmt,
        source_size=(width, height),
        source_bytes=len(data),
    )

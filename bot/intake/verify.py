"""Check a downloaded result image by decoding it, before it is posted and charged (a PNG
proved whole by `bot.intake.pngcheck` while it downloaded has only its header read)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from bot.errors import InvalidImage
from bot.intake.formats import RESULT_FORMATS, check_jpeg_scans, open_restricted
from bot.media import sniff_format

# Backends return at most a few megapixels; anything far larger is not a remix result, and
# decoding it would take hundreds of MB.
RESULT_MAX_PIXELS = 40_000_000


def check_result(path: Path, *, whole: bool = False) -> tuple[int, int]:
    """Decode the whole image at `path`; its size, or InvalidImage if it is damaged or too big.

    The magic bytes were checked while downloading; this catches a truncated or corrupt body,
    which would otherwise be posted as a broken attachment and charged to the member. `whole`:
    a `PngStream` already inflated every row of this PNG as it was saved, so only its header
    is read here (format, pixel cap, the chunks before the pixels).
    """
    data = path.read_bytes()
    try:
        if sniff_format(data) == "JPEG":  # FF DA pairs occur by chance in PNG/WebP data
            check_jpeg_scans(data)
        with open_restricted(data, RESULT_FORMATS) as im:
            w, h = im.size
            if w * h > RESULT_MAX_PIXELS:
                raise InvalidImage(
                    f"A result image is {w}x{h}; the limit is {RESULT_MAX_PIXELS // 1_000_000}"
                    " megapixels."
                )
            if not (whole and im.format == "PNG"):
                im.load()
            return w, h
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            f"A result image is over {RESULT_MAX_PIXELS // 1_000_000} megapixels."
        ) from None
    except Exception:  # Pillow's errors for broken data are OSError, SyntaxError, ValueError…
        raise InvalidImage("A result image is damaged or truncated.") from None

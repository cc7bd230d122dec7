"""The caps every image entering the bot is held to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.remix.enums import ASPECT_RATIOS, MAX_IMAGE_BYTES

if TYPE_CHECKING:
    from bot.settings import Settings


@dataclass(frozen=True)
class IntakeLimits:
    """Byte, pixel and side caps for incoming images, and how they are shaped for the backend."""

    max_bytes: int = 25 * 1000 * 1000
    max_pixels: int = 50 * 1000 * 1000
    max_side: int = 2048
    auto_aspect: bool = True
    backend_max_bytes: int = MAX_IMAGE_BYTES
    # Refuse panoramas/strips beyond this: cropping them to a supported ratio (at most 3:1) would
    # throw most of the picture away, and a 10000x10 strip is not something to remix.
    max_aspect: float = 10.0
    # Smallest side accepted; below this there is nothing for the model to work from.
    min_side: int = 16
    # Largest side accepted whatever the pixel count (WebP's own maximum is 16383).
    max_input_side: int = 16384
    # JPEG DCT scaling may land a little under max_side (4000 px / 2 = 2000 for 2048): accept a
    # result of at least this fraction of max_side instead of decoding at full size and
    # resampling. 1.0 gives exactly max_side. See docs/intake.md ("draft slack").
    draft_slack: float = 0.95
    # Ratios auto_aspect may pick from: narrow it to what the backend takes (the legacy API has
    # no 1x2, 4x5, ...), e.g. dataclasses.replace(limits, ratios=LEGACY_ASPECT_RATIOS).
    ratios: tuple[str, ...] = ASPECT_RATIOS

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeLimits:
        """Limits from the bot's settings (max_input_bytes, max_input_pixels, max_side, auto_aspect)."""
        return cls(
            max_bytes=settings.max_input_bytes,
            max_pixels=settings.max_input_pixels,
            max_side=settings.max_side,
            auto_aspect=settings.auto_aspect,
        )

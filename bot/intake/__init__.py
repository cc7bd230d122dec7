"""Image intake and output fitting: every image that enters or leaves the bot passes here."""

from bot.intake.fit import MULTIPART_MARGIN, UploadFile, fit_for_upload
from bot.intake.formats import ACCEPTED, identify
from bot.intake.limits import IntakeLimits
from bot.intake.pool import ImagePool
from bot.intake.prepare import PreparedImage, prepare, prepare_style_refs
from bot.intake.stored import load_prepared

__all__ = [
    "ACCEPTED",
    "MULTIPART_MARGIN",
    "ImagePool",
    "IntakeLimits",
    "PreparedImage",
    "UploadFile",
    "fit_for_upload",
    "identify",
    "load_prepared",
    "prepare",
    "prepare_style_refs",
]

"""The terminal's words for errors and job endings (the Discord side has its own, in cogs/)."""

from __future__ import annotations

from bot.errors import RemixbotError
from bot.intake.formats import UnreadableFormat
from bot.lifecycle import Ending, Exit
from bot.store.errors import QuotaExceeded

NOT_CHARGED = "The `cli` quota was not charged."


def error_sentence(exc: BaseException) -> str:
    """One sentence for an error shown in the terminal."""
    if isinstance(exc, QuotaExceeded):
        return exc.sentence(exc.resets_at.strftime("at %Y-%m-%d %H:%M UTC"))
    if isinstance(exc, UnreadableFormat):  # no server here: the admin's own installation
        return exc.sentence("this installation")
    if isinstance(exc, RemixbotError):
        return str(exc)
    return f"Internal error ({type(exc).__name__}); see the log."


def ending_sentence(ending: Ending) -> str:
    """How a terminal remix ended without (all of) its images."""
    error = f"{error_sentence(ending.error)} " if ending.error is not None else ""
    match ending.exit:
        case Exit.REJECTED:
            return f"{error}{NOT_CHARGED}"
        case Exit.UNKNOWN:
            return f"{error}It may have run at the backend; it was not resent. {NOT_CHARGED}"
        case Exit.NOTHING_DELIVERED:
            delivery = ending.delivery
            if delivery is not None and delivery.withheld and not delivery.failed_downloads:
                return (
                    "Every image was withheld by the backend's safety check; nothing to save. "
                    f"{NOT_CHARGED}"
                )
            first = delivery.errors[0] if delivery is not None and delivery.errors else ""
            return f"No image could be downloaded. {first} {NOT_CHARGED}".replace("  ", " ")
        case Exit.NOT_POSTED:
            return f"The images came back but could not be saved. {NOT_CHARGED}"
        case Exit.TIMED_OUT | Exit.INTERRUPTED:
            return f"The remix was stopped before it finished. {NOT_CHARGED}"
        case Exit.LEFT_FOR_RESUME:
            return "Stopped; the bot finishes this task when it next starts."
        case _:
            return f"{error}The remix did not run. {NOT_CHARGED}"


def exit_code(ending: Ending) -> int:
    """The command's exit code for an ending (0 saved, 1 backend or download failure, 2 bad
    input, 3 quota)."""
    if ending.error is not None and isinstance(ending.error, RemixbotError):
        return ending.error.exit_code
    return 1

"""Discord's words for errors and job endings: the one place a domain error becomes Discord text.

Domain errors carry fields and a plain sentence; this adds what only Discord has (live relative
timestamps, command names) and keeps private what the channel must not see.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GENERIC_FAILURE
from bot.errors import RemixbotError
from bot.jobs import SchedulerClosed
from bot.lifecycle import Ending, Exit
from bot.store import QuotaExceeded, UserBlocked
from bot.workflow import InputGone, NotRerunnable

NOT_CHARGED = "you were not charged"


def error_sentence(error: BaseException) -> str:
    """The one sentence a member sees (privately) for an error."""
    if isinstance(error, app_commands.CommandInvokeError | commands.CommandInvokeError):
        error = error.original
    if isinstance(error, QuotaExceeded):
        return error.sentence(discord.utils.format_dt(error.resets_at, "R"))
    if isinstance(error, InputGone):
        return f"{error} Start a new one with /remix."
    if isinstance(error, NotRerunnable):
        return f"{str(error).removesuffix('.')}; start a new one with /remix."
    if isinstance(error, RemixbotError):
        return str(error)
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"You're going a bit fast; try again in {error.retry_after:.0f} seconds."
    if isinstance(error, app_commands.BotMissingPermissions):
        missing = ", ".join(p.replace("_", " ") for p in error.missing_permissions)
        return f"I'm missing permissions in this channel: {missing}; ask an admin to grant them."
    if isinstance(error, app_commands.MissingPermissions | app_commands.MissingRole):
        return "You don't have permission to use this command here."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works only in a server."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here."
    if isinstance(error, app_commands.CommandSignatureMismatch | app_commands.CommandNotFound):
        return "This command changed since your app loaded it; reload Discord and try again."
    return GENERIC_FAILURE


def public_sentence(error: BaseException) -> str:
    """The sentence for a message the channel sees: a block's reason stays private (/quota)."""
    if isinstance(error, UserBlocked):
        return "You can't remix here right now; /quota tells you why (only you see it)."
    return error_sentence(error)


def ending_sentence(ending: Ending) -> str:
    """What the member's message says when a job ended without (all of) its images."""
    error = ending.error
    match ending.exit:
        case Exit.REJECTED:
            return f"{error_sentence(error) if error else 'The backend refused it.'} {_cap(NOT_CHARGED)}."
        case Exit.UNKNOWN:
            if error is not None and isinstance(error, RemixbotError):
                return f"{error} You were not charged for it."
            return f"Something went wrong on our side while remixing; {NOT_CHARGED}."
        case Exit.NOTHING_DELIVERED:
            return _nothing_sentence(ending)
        case Exit.NOT_POSTED:
            return (
                f"The images were generated but could not be posted here; {NOT_CHARGED}. "
                "If this keeps happening, ask an admin to check my permissions in this channel."
            )
        case Exit.TIMED_OUT:
            return f"This remix took too long and was stopped; {NOT_CHARGED}."
        case Exit.INTERRUPTED:
            return f"The bot is restarting and this remix was interrupted; {NOT_CHARGED}."
        case Exit.LEFT_FOR_RESUME:
            return "The bot is restarting; this remix will be posted when it is back."
        case Exit.NOT_STARTED:
            if isinstance(error, SchedulerClosed):
                return (
                    f"The bot is restarting, so this remix was not started; {NOT_CHARGED}. "
                    "Try again in a minute."
                )
            if error is not None:
                return f"{error_sentence(error)} This remix was not started; {NOT_CHARGED}."
            return f"This remix was cancelled before it started; {NOT_CHARGED}."
        case Exit.CRASHED_AT_BACKEND:
            return (
                "The bot restarted while this remix was at the backend; it may or may not have "
                f"run, so {NOT_CHARGED}. Press Retry to run it again."
            )
        case _:
            return f"This remix ended without images; {NOT_CHARGED}."


def _nothing_sentence(ending: Ending) -> str:
    delivery = ending.delivery
    if delivery is None:
        return f"No image came back; {NOT_CHARGED}."
    total = delivery.withheld + delivery.failed_downloads
    if delivery.withheld and not delivery.failed_downloads:
        return (
            f"All {total} image{'s' if total != 1 else ''} were withheld by the backend's "
            f"safety filter; {NOT_CHARGED}. Try a different prompt or image."
        )
    reason = delivery.errors[0] if delivery.errors else "The images could not be downloaded."
    return f"{reason} {_cap(NOT_CHARGED)}."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]

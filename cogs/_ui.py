"""Shared presentation: the result embed and progress lines."""

from __future__ import annotations

from typing import Any

import discord

from bot.jobs import JobState, Progress
from bot.lifecycle import Outcome

REROLL_EMOJI = "🔁"
RETRY_EMOJI = "🔄"
EMBED_COLOUR = discord.Colour(0x7C5CFF)
# Discord caps: embed description 4096, field value 1024, title 256 characters.
PROMPT_SHOWN = 1000


def progress_line(progress: Progress) -> str:
    """One short line for the deferred response: queued (position, ETA), generating, uploading."""
    if progress.state is JobState.QUEUED:
        where = "next in line" if progress.position == 1 else f"position {progress.position}"
        eta = progress.eta_seconds
        about = f", about {_duration(eta)}" if eta else ""
        return f"⏳ Queued — {where}{about}."
    if progress.stage == "uploading":
        return "📤 Uploading the images…"
    eta = progress.eta_seconds
    about = f" (about {_duration(eta)})" if eta else ""
    return f"🎨 Generating{about}…"


def _duration(seconds: float) -> str:
    seconds = max(1, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    return f"{round(seconds / 60)} min"


def result_embed(outcome: Outcome, requester_id: int) -> discord.Embed:
    """The embed under a result: prompt, seeds, non-default options, job id, who, quota left."""
    job, request, delivery = outcome.job, outcome.request, outcome.delivery
    prompt = (
        request.prompt
        if len(request.prompt) <= PROMPT_SHOWN
        else request.prompt[:PROMPT_SHOWN] + "…"
    )
    title = "Reroll" if job.kind == "reroll" else "Remix"
    embed = discord.Embed(title=title, description=prompt, colour=EMBED_COLOUR)
    seeds = ", ".join(str(i.seed) for i in delivery.images if i.seed is not None)
    if seeds:
        embed.add_field(
            name="Seed" if "," not in seeds else "Seeds", value=seeds[:1024], inline=False
        )
    options = request.non_default_options()
    options.pop("seed", None)
    options.pop("style_ref_count", None)
    if options:
        text = ", ".join(f"{k.replace('_', ' ')}: {_show(v)}" for k, v in options.items())
        embed.add_field(name="Options", value=text[:1024], inline=False)
    notes = []
    if delivery.withheld:
        total = len(delivery.images) + delivery.withheld + delivery.failed_downloads
        notes.append(
            f"{delivery.withheld} of {total} images were withheld by the backend's safety filter "
            "(not charged)."
        )
    if delivery.failed_downloads:
        notes.append(f"{delivery.failed_downloads} image(s) could not be downloaded (not charged).")
    if notes:
        embed.add_field(name="Note", value=" ".join(notes)[:1024], inline=False)
    if outcome.changes:  # what intake did to the member's image (converted, rotated, cropped…)
        embed.add_field(name="Your image", value=", ".join(outcome.changes)[:1024], inline=False)
    footer = f"Job {job.id} · react {REROLL_EMOJI} or press Reroll"
    if outcome.quota_known:  # left out when the database could not say in time
        left = "unlimited" if outcome.quota_left is None else str(outcome.quota_left)
        footer += f" · images left: {left}"
    embed.set_footer(text=footer)
    embed.add_field(name="Asked by", value=f"<@{requester_id}>", inline=True)
    return embed


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(_show(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{v}" for v in value.values())
    return str(value)

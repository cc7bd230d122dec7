"""Shared presentation: the result embed, a job's details, progress lines, and prompts made safe
to show (every member-visible text that echoes a prompt goes through `safe_text`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import discord

from bot.jobs import JobState, Progress
from bot.lifecycle import Outcome
from bot.remix.request import RemixRequest
from bot.store import Job

REROLL_EMOJI = "🔁"
RETRY_EMOJI = "🔄"
DELETE_EMOJI = "❌"
DM_EMOJI = "✉️"
EDIT_EMOJI = "✏️"
CANCEL_EMOJI = "🛑"
EMBED_COLOUR = discord.Colour(0x7C5CFF)
# Discord caps: embed description 4096, field value 1024, title 256 characters.
PROMPT_SHOWN = 1000
# Discord renders these even after markdown is escaped: mentions (<@id>, <@&id>, <#id>),
# timestamps and custom emoji (all inside angle brackets), and a masked link's closing bracket.
_RENDERED = re.compile(r"([<\]])")


def safe_text(text: str, limit: int = PROMPT_SHOWN) -> str:
    """`text` (a member's prompt) as Discord shows it literally: markdown, masked links and
    mentions escaped, @everyone/@here broken, cut to `limit` characters."""
    short = text if len(text) <= limit else text[:limit] + "…"
    escaped = discord.utils.escape_markdown(short, ignore_links=False)
    escaped = discord.utils.escape_mentions(escaped)
    return _RENDERED.sub(r"\\\1", escaped)


def jump_url(guild_id: int | None, channel_id: int | None, message_id: int | None) -> str | None:
    """A link that opens a message in Discord (None when the message is not known)."""
    if channel_id is None or message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def result_link(job: Job) -> str | None:
    """Where a job's result (or, before it was posted, its request) can be found."""
    if job.message_ids:
        return jump_url(job.guild_id, job.message_channel_id or job.channel_id, job.message_ids[0])
    return jump_url(job.guild_id, job.channel_id, job.request_message_id)


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
    title = "Reroll" if job.kind == "reroll" else "Remix"
    embed = discord.Embed(title=title, description=safe_text(request.prompt), colour=EMBED_COLOUR)
    seeds = ", ".join(str(i.seed) for i in delivery.images if i.seed is not None)
    if seeds:
        embed.add_field(
            name="Seed" if "," not in seeds else "Seeds", value=seeds[:1024], inline=False
        )
    _add_options(embed, request)
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
    footer = f"Job {job.id} · react {REROLL_EMOJI} to reroll, {DM_EMOJI} to get it by DM"
    if outcome.quota_known:  # left out when the database could not say in time
        left = "unlimited" if outcome.quota_left is None else str(outcome.quota_left)
        footer += f" · images left: {left}"
    embed.set_footer(text=footer)
    embed.add_field(name="Asked by", value=f"<@{requester_id}>", inline=True)
    return embed


def _add_options(embed: discord.Embed, request: RemixRequest) -> None:
    """The options that differ from the defaults (a negative prompt is a prompt: made safe)."""
    options = request.non_default_options()
    options.pop("seed", None)
    options.pop("style_ref_count", None)
    if options:
        text = ", ".join(
            f"{k.replace('_', ' ')}: {safe_text(_show(v), 300)}" for k, v in options.items()
        )
        embed.add_field(name="Options", value=text[:1024], inline=False)


def job_embed(job: Job, note: str | None = None) -> discord.Embed:
    """A job's details (for /show and the DM control): prompt, options, who, when, where."""
    request = RemixRequest.from_dict(job.request)
    embed = discord.Embed(
        title=f"Job {job.id}", description=safe_text(request.prompt), colour=EMBED_COLOUR
    )
    if request.seed is not None:
        embed.add_field(name="Seed", value=str(request.seed), inline=True)
    _add_options(embed, request)
    embed.add_field(name="Asked by", value=f"<@{job.user_id}>", inline=True)
    link = result_link(job)
    if link:
        embed.add_field(name="Original", value=f"[Jump to it]({link})", inline=True)
    if note:
        embed.add_field(name="Note", value=note[:1024], inline=False)
    embed.set_footer(text=f"Job {job.id} · {job.state}")
    embed.timestamp = job.created_at
    return embed


def jobs_lines(jobs: Sequence[Job]) -> str:
    """A member's recent jobs, one line each: id, state, when, prompt, jump link."""
    if not jobs:
        return "You have no remixes yet; start one with /remix."
    lines = []
    for job in jobs:
        prompt = safe_text(str(job.request.get("prompt", "")), 60)
        when = f"<t:{int(job.created_at.timestamp())}:R>"
        link = result_link(job)
        where = f" · [jump]({link})" if link else ""
        lines.append(f"`{job.id}` **{job.state}** {when} · {prompt}{where}")
    return "\n".join(lines)[:1900]


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(_show(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{v}" for v in value.values())
    return str(value)

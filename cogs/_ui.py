"""Shared presentation: the result embed, progress lines and the Reroll button."""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.jobs import JobState, Progress
from bot.workflow import Outcome

REROLL_EMOJI = "🔁"
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
    left = "unlimited" if outcome.quota_left is None else str(outcome.quota_left)
    embed.set_footer(
        text=f"Job {job.id} · react {REROLL_EMOJI} or press Reroll · images left: {left}"
    )
    embed.add_field(name="Asked by", value=f"<@{requester_id}>", inline=True)
    return embed


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(_show(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{v}" for v in value.values())
    return str(value)


class RerollButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"remix:reroll:(?P<job>[0-9]{1,18})"
):
    """The Reroll button: only a job id lives in its custom id, so it works after restarts."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Reroll",
                emoji=REROLL_EMOJI,
                style=discord.ButtonStyle.secondary,
                custom_id=f"remix:reroll:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> RerollButton:
        """Rebuild the button from a click (no state needed)."""
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Reroll the job for whoever clicked."""
        cog = interaction.client.get_cog("Remix")  # type: ignore[union-attr]
        if cog is None:
            await interaction.response.send_message(
                "Remixing is not available right now.", ephemeral=True
            )
            return
        await cog.reroll_from_button(interaction, self.job_id)


def result_view(job_id: int) -> discord.ui.View:
    """A persistent view holding the Reroll button for one job."""
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job_id))
    return view

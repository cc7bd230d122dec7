"""A test-only extension: `/probe` (defer, download, edit-original with a file and a DynamicItem
button), `/fail` (errors for the error hook) and a reaction listener."""

from __future__ import annotations

import hashlib
import io
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import InvalidRequest


class ProbeButton(discord.ui.DynamicItem[discord.ui.Button], template=r"probe:(?P<n>[0-9]+)"):
    """A button that carries only a number; its callback posts a followup naming it."""

    def __init__(self, n: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=f"Again {n}", style=discord.ButtonStyle.secondary, custom_id=f"probe:{n}"
            )
        )
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: object, /
    ) -> ProbeButton:
        return cls(int(match["n"]))  # type: ignore[index]

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.followup.send(f"clicked {self.n} by {interaction.user.id}")


class Probe(commands.Cog):
    """The probe commands."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="probe", description="Echo an attachment back (test only)")
    @app_commands.describe(image="Any file", n="A number for the button")
    async def probe(
        self, interaction: discord.Interaction, image: discord.Attachment, n: int = 1
    ) -> None:
        await interaction.response.defer()
        data = await image.read()
        digest = hashlib.sha256(data).hexdigest()
        view = discord.ui.View(timeout=None)
        view.add_item(ProbeButton(n))
        await interaction.edit_original_response(
            content=f"got {len(data)} bytes sha256={digest}",
            attachments=[discord.File(io.BytesIO(data), filename=f"echo-{image.filename}")],
            view=view,
        )

    @app_commands.command(name="fail", description="Fail on purpose (test only)")
    async def fail(
        self, interaction: discord.Interaction, kind: Literal["invalid", "crash"]
    ) -> None:
        if kind == "invalid":
            raise InvalidRequest("strength must be from 1 to 10, not 11.")
        raise RuntimeError("internal detail that members must not see")

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if payload.user_id == self.bot.user.id:  # type: ignore[union-attr]
            return
        channel = self.bot.get_channel(payload.channel_id)
        if isinstance(channel, discord.TextChannel):
            message = await channel.fetch_message(payload.message_id)
            await channel.send(f"saw {payload.emoji} on {message.id}")


async def setup(bot: commands.Bot) -> None:
    """Register the button class and the cog."""
    bot.add_dynamic_items(ProbeButton)
    await bot.add_cog(Probe(bot))

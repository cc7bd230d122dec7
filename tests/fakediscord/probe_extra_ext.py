"""A second test-only extension: one more command, so the command shape changes."""

from __future__ import annotations

import io

import discord
from discord import app_commands
from discord.ext import commands


class Extra(commands.Cog):
    """One extra command."""

    @app_commands.command(name="extra", description="Another command (test only)")
    async def extra(self, interaction: discord.Interaction) -> None:
        # Answers at once (type 4) with a file: a multipart interaction callback.
        await interaction.response.send_message(
            "extra", file=discord.File(io.BytesIO(b"extra-bytes"), filename="extra.txt")
        )


async def setup(bot: commands.Bot) -> None:
    """Register the cog."""
    await bot.add_cog(Extra())

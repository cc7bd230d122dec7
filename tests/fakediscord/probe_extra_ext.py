"""A second test-only extension: one more command, so the command shape changes."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands


class Extra(commands.Cog):
    """One extra command."""

    @app_commands.command(name="extra", description="Another command (test only)")
    async def extra(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("extra")


async def setup(bot: commands.Bot) -> None:
    """Register the cog."""
    await bot.add_cog(Extra())

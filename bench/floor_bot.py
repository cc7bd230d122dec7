"""The floor for bench/load.py: a discord.py bot that only defers `/remix`, nothing else.

Run by the benchmark as a process against the same fake Discord, so the acknowledgement figures
of the real bot can be read against what discord.py itself costs on this machine.
"""

from __future__ import annotations

import asyncio
import signal

import discord
from discord import app_commands

from bot.client import apply_discord_endpoints
from bot.settings import load_settings


class FloorBot(discord.Client):
    """Syncs one `/remix` command and answers every use with a deferral."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default())
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="remix", description="Defer only")
        async def remix(
            interaction: discord.Interaction, image: discord.Attachment, prompt: str
        ) -> None:
            """Defer only."""
            await interaction.response.defer(thinking=True)

    async def setup_hook(self) -> None:
        """Upload the command (the fake needs it to route `/remix`)."""
        await self.tree.sync()


async def main() -> None:
    """Serve until SIGTERM."""
    settings = load_settings(dotenv=None)
    apply_discord_endpoints(settings)
    bot = FloorBot()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with bot:
        runner = asyncio.create_task(bot.start(settings.require_discord_token()))
        await stop.wait()
        await bot.close()
        runner.cancel()


if __name__ == "__main__":
    asyncio.run(main())

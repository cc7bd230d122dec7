"""What every cog of the bot shares: the bot's services (absent only in `remixbot sync`, which
loads the cogs for their commands' shape and never runs them) and the public "thinking…"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.client import RemixBot
from bot.workflow import RemixService
from cogs._controls import CONTROLS
from cogs._publish import InteractionPresenter, thinking

if TYPE_CHECKING:
    from bot.services import Services


class ServicesCog(commands.Cog):
    """A cog over the bot's services, with the controls its presenters attach."""

    def __init__(self, bot: RemixBot, services: Services | None) -> None:
        self.bot = bot
        self._services = services
        self.controls = CONTROLS
        super().__init__()

    @property
    def services(self) -> Services:
        """The bot's services (absent only in `remixbot sync`, which never runs commands)."""
        if self._services is None:
            raise RuntimeError(f"the {type(self).__name__} cog was loaded without services")
        return self._services

    @property
    def remix_service(self) -> RemixService:
        """The job service."""
        return self.services.remix

    async def _thinking(
        self, interaction: discord.Interaction, *, remember: bool = True
    ) -> InteractionPresenter:
        """The public "thinking…" and its presenter (see `thinking` for `remember`)."""
        return await thinking(interaction, self.services.pool, self.controls, remember=remember)

"""The Discord half of `remixbot check`: log in over REST, show the application's intents and
install link, and compare the slash commands with what Discord holds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import discord

from bot.cli.invite import invite_url
from bot.client import RemixBot, apply_discord_endpoints, login_errors
from bot.discord_sync import shape_hash
from bot.extensions import DEFAULT_EXTENSIONS
from bot.settings import Settings


@dataclass(frozen=True)
class DiscordReport:
    """What the login found."""

    bot_name: str
    application_id: int
    intents: tuple[str, ...]  # the gateway intents the bot asks for
    privileged: tuple[str, ...]  # the privileged intents it asks for (none)
    portal_privileged: tuple[str, ...]  # the privileged intents switched on in the portal
    install_link: str
    local_commands: tuple[str, ...]
    remote_commands: tuple[str, ...]
    synced_shape: bool  # the last sync recorded the shape the code has now
    labels: tuple[tuple[str, str], ...] = ()  # (name, how a member sees it) of every command

    def label(self, name: str) -> str:
        """How members see a command: `/remix`, or a menu entry by its name."""
        return dict(self.labels).get(name, name)

    @property
    def commands_in_sync(self) -> bool:
        """Discord holds the same commands the code defines, uploaded from this shape."""
        return self.synced_shape and self.local_commands == self.remote_commands


PRIVILEGED = ("presences", "members", "message_content")
# Application command types (Discord's numbers): chat input, user menu, message menu.
MENU_KINDS = {2: "user menu", 3: "message menu"}


def command_label(name: str, kind: int) -> str:
    """`/name` for a slash command; `"name" (message menu)` for a context-menu entry."""
    return f'"{name}" ({MENU_KINDS[kind]})' if kind in MENU_KINDS else f"/{name}"


def _portal_flags(app: discord.AppInfo) -> tuple[str, ...]:
    flags = app.flags
    found = []
    if flags.gateway_presence or flags.gateway_presence_limited:
        found.append("presences")
    if flags.gateway_guild_members or flags.gateway_guild_members_limited:
        found.append("members")
    if flags.gateway_message_content or flags.gateway_message_content_limited:
        found.append("message_content")
    return tuple(found)


async def inspect_discord(settings: Settings) -> DiscordReport:
    """Log in over REST only (no gateway), load the cogs, and read the application and commands."""
    token = settings.require_discord_token()
    apply_discord_endpoints(settings)
    bot = RemixBot(settings, extensions=DEFAULT_EXTENSIONS, auto_sync=False)
    async with bot:
        with login_errors(settings):
            await bot.login(token)  # runs setup_hook: the cogs load, nothing is synced
            app = await bot.application_info()
            remote = await bot.tree.fetch_commands()
        local = bot.command_payloads()
        stored = await asyncio.to_thread(bot.sync_state.read)
        intents = tuple(name for name, on in bot.intents if on)
        kinds = {c.name: c.type.value for c in remote} | {
            str(c["name"]): int(c.get("type", 1)) for c in local
        }
        return DiscordReport(
            bot_name=str(bot.user),
            application_id=app.id,
            intents=intents,
            privileged=tuple(name for name in intents if name in PRIVILEGED),
            portal_privileged=_portal_flags(app),
            install_link=invite_url(app.id),
            local_commands=tuple(sorted(str(c["name"]) for c in local)),
            remote_commands=tuple(sorted(c.name for c in remote)),
            synced_shape=stored.get(bot._global_scope()) == shape_hash(local),  # the sync's own key
            labels=tuple(sorted((name, command_label(name, kind)) for name, kind in kinds.items())),
        )

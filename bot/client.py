"""RemixBot: the discord.py client that loads the cogs, syncs commands when their shape changed,
and answers every app-command error with one clear sentence."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands
from discord.ext import commands

from bot.discord_sync import SyncState, shape_hash
from bot.errors import RemixbotError, SettingsError
from bot.extensions import DEFAULT_EXTENSIONS
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger("remixbot.client")


_ORIGINAL_API_BASE = discord.http.Route.BASE
_ORIGINAL_GATEWAY = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY

TOKEN_REJECTED = (
    "Discord rejected DISCORD_TOKEN; copy the token again from the Bot page of the "
    "Developer Portal (reset it there if it leaked)."
)
GENERIC_FAILURE = "Something went wrong on our side; please try again in a minute."


class DiscordTokenRejected(SettingsError):
    """Discord refused DISCORD_TOKEN at login."""


class DiscordGatewayRefused(RemixbotError):
    """Discord closed the gateway for good (a close code discord.py does not retry)."""


class DiscordUnreachable(RemixbotError):
    """Discord's REST API (DISCORD_API_BASE) could not be reached at login."""


@contextlib.contextmanager
def login_errors(settings: Settings) -> Iterator[None]:
    """Turn a rejected token or an unreachable API at login into one-sentence errors."""
    try:
        yield
    except discord.LoginFailure:
        raise DiscordTokenRejected(TOKEN_REJECTED) from None
    except discord.PrivilegedIntentsRequired:
        raise DiscordGatewayRefused(
            "Discord refused the gateway connection because of privileged intents; "
            "this bot needs none, so check for a modified build."
        ) from None
    except discord.ConnectionClosed as exc:
        if exc.code == 4004:  # "Authentication failed" on the gateway
            raise DiscordTokenRejected(TOKEN_REJECTED) from None
        raise DiscordGatewayRefused(
            f"Discord closed the gateway connection with code {exc.code}; see the log above."
        ) from None
    except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
        raise DiscordUnreachable(
            f"Could not reach Discord's API at {settings.discord_api_base} "
            f"({type(exc).__name__}); check the network or DISCORD_API_BASE."
        ) from None


def bot_intents() -> discord.Intents:
    """The gateway events the bot handles, and no others (less traffic on big servers)."""
    return discord.Intents(
        # The servers' channels, roles and permission overwrites: can the bot post here, does a
        # member have Manage Messages, /remix's command permissions.
        guilds=True,
        # 🔁 ❌ ✉️ on results, in servers and in DMs. Commands, buttons, menus and modals come
        # as interactions, which need no intent; the bot reads no messages and no members.
        guild_reactions=True,
        dm_reactions=True,
    )


def apply_discord_endpoints(settings: Settings) -> None:
    """Point discord.py's REST base and gateway at the configured URLs (process-global)."""
    discord.http.Route.BASE = settings.discord_api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


async def fetch_application_id(settings: Settings) -> int:
    """Log in over REST only (no gateway) with the token and return the application id."""
    token = settings.require_discord_token()
    apply_discord_endpoints(settings)
    skip_voice_warnings()
    # REST only, so intents never reach Discord; the bot's own set keeps discord.py from warning
    # that the guilds intent is off.
    client = discord.Client(intents=bot_intents())
    async with client:
        with login_errors(settings):
            await client.login(token)
        if client.application_id is None:
            raise DiscordUnreachable("Discord did not report the application id; try again.")
        return client.application_id


def skip_voice_warnings() -> None:
    """The bot has no voice features: skip discord.py's start-up warnings about voice libraries."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


def reset_discord_endpoints() -> None:
    """Put discord.py's REST base and gateway back to Discord's own (used by tests)."""
    discord.http.Route.BASE = _ORIGINAL_API_BASE
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = _ORIGINAL_GATEWAY


def plain_sentence(error: BaseException) -> str:
    """Until a cog installs Discord's renderer (cogs/_render.py): a domain error's own sentence."""
    if isinstance(error, app_commands.CommandInvokeError | commands.CommandInvokeError):
        error = error.original
    return str(error) if isinstance(error, RemixbotError) else GENERIC_FAILURE


class RemixTree(app_commands.CommandTree):
    """The command tree with the bot's one app-command error hook."""

    # The Discord renderer of errors; the cogs install theirs when they load.
    error_sentence: Callable[[BaseException], str] = staticmethod(plain_sentence)

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        """Answer with one ephemeral sentence; log what the member does not see."""
        sentence = self.error_sentence(error)
        original = getattr(error, "original", error)
        command = interaction.command.qualified_name if interaction.command else "?"
        if not isinstance(original, RemixbotError | app_commands.CheckFailure):
            log.error(
                "command /%s failed: %s",
                command,
                type(original).__name__,
                exc_info=(type(original), original, original.__traceback__),
            )
        else:
            log.info("command /%s refused: %s", command, sentence)
        response = interaction.response
        try:
            if response.type is discord.InteractionResponseType.deferred_channel_message:
                # After a "thinking…" the answer replaces it (a followup would be a new message
                # beside a loading one); a deferred command that answers for itself catches its
                # own errors. A private "thinking…" stays private.
                await interaction.edit_original_response(
                    content=sentence, embed=None, attachments=[], view=None
                )
            elif response.is_done():
                await interaction.followup.send(sentence, ephemeral=True)
            else:
                await response.send_message(sentence, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not tell the member about the error (HTTP %s)", exc.status)


class RemixBot(commands.Bot):
    """The Discord client: services, cogs by dotted name, DynamicItems and command sync."""

    def __init__(
        self,
        settings: Settings,
        *,
        services: Services | None = None,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        auto_sync: bool = True,
        **options: Any,
    ) -> None:
        skip_voice_warnings()
        # Never @everyone/@here or role pings: messages can carry prompts and backend reasons.
        options.setdefault(
            "allowed_mentions",
            discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=True),
        )
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            tree_cls=RemixTree,
            help_command=None,
            **options,
        )
        self.settings = settings
        self.services = services
        self.remix_cog: commands.Cog | None = None  # set by cogs.remix when it loads
        self.extensions_to_load = tuple(extensions)
        self.auto_sync = auto_sync
        self.sync_state = SyncState(settings.data_dir / "command-sync.json")
        self.last_sync: str | None = None  # "global", "guild:<id>" or None when skipped

    async def setup_hook(self) -> None:
        """Load the cogs (they register their DynamicItems), then sync if the shape changed."""
        for name in self.extensions_to_load:
            await self.load_extension(name)
        if self.auto_sync:
            await self.sync_if_changed()

    async def on_ready(self) -> None:
        """Tell the admin the bot is up (fires again after a reconnect that needed a new session)."""
        shards = getattr(self, "shard_ids", None)
        log.info(
            "ready: logged in as %s in %d server(s)%s; members can use /remix",
            self.user,
            len(self.guilds),
            f" on shards {','.join(map(str, shards))} of {self.shard_count}" if shards else "",
        )

    def command_payloads(self) -> list[dict[str, Any]]:
        """The global command payloads exactly as `tree.sync()` would upload them."""
        return [cmd.to_dict(self.tree) for cmd in self.tree.get_commands()]

    async def sync_if_changed(self) -> bool:
        """Sync global commands when their shape differs from the last sync; True if synced."""
        digest = shape_hash(self.command_payloads())
        stored = await asyncio.to_thread(self.sync_state.read)
        if stored.get(self._global_scope()) == digest:
            log.info("application commands unchanged since the last sync; not syncing")
            self.last_sync = None
            return False
        await self.sync_commands()
        return True

    def _global_scope(self) -> str:
        # Keyed by application: a new token for another application must sync again.
        return f"global:{self.application_id}"

    async def sync_commands(
        self, *, guild: int | None = None, clear: bool = False
    ) -> list[app_commands.AppCommand]:
        """Upload the commands: globally, or copied to one guild (instant); ``clear`` empties the guild."""
        if guild is None:
            digest = shape_hash(self.command_payloads())
            synced = await self.tree.sync()
            await asyncio.to_thread(self.sync_state.write, self._global_scope(), digest)
            self.last_sync = "global"
        else:
            target = discord.Object(id=guild)
            if clear:
                self.tree.clear_commands(guild=target)
            else:
                self.tree.copy_global_to(guild=target)
            synced = await self.tree.sync(guild=target)
            self.last_sync = f"guild:{guild}"
        log.info("synced %d application commands (%s)", len(synced), self.last_sync)
        return synced


class ShardedRemixBot(RemixBot, commands.AutoShardedBot):
    """The bot running some of Discord's shards in this process (REMIXBOT_SHARDS of
    REMIXBOT_SHARD_COUNT); other processes run the rest against the same books."""


def make_bot(
    settings: Settings,
    *,
    services: Services | None = None,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    **options: Any,
) -> RemixBot:
    """The client for `settings`: one connection, or discord.py's sharded client when
    REMIXBOT_SHARD_COUNT is set (the shards in REMIXBOT_SHARDS, or all of them)."""
    if not settings.shard_count:
        return RemixBot(settings, services=services, extensions=extensions, **options)
    return ShardedRemixBot(
        settings,
        services=services,
        extensions=extensions,
        shard_count=settings.shard_count,
        shard_ids=list(settings.shards) or None,
        **options,
    )

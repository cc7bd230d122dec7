"""The fake Discord's world: one application and its bot user, a guild with a text channel (and
more guilds, each with a channel, for sharded bots), three members, roles, and everything said in
it; the clock, and the switches tests flip."""

from __future__ import annotations

import time
from typing import Any

from tests.fakediscord import payloads as p
from tests.fakediscord.models import FakeInteraction, StoredAttachment, StoredMessage

API_PREFIX = "/api/v10"
MiB = 1024 * 1024

# Permission bits (Discord's "Permissions" table) the fake's members and roles use.
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
MANAGE_MESSAGES = 1 << 13
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
EVERY_PERMISSION = (1 << 51) - 1  # the owner's (and an administrator's)
# What @everyone may do in a typical community server: talk, post images, react, use commands.
MEMBER_PERMISSIONS = (
    (1 << 6)  # ADD_REACTIONS
    | (1 << 10)  # VIEW_CHANNEL
    | (1 << 11)  # SEND_MESSAGES
    | (1 << 14)  # EMBED_LINKS
    | (1 << 15)  # ATTACH_FILES
    | (1 << 16)  # READ_MESSAGE_HISTORY
    | (1 << 18)  # USE_EXTERNAL_EMOJIS
    | (1 << 31)  # USE_APPLICATION_COMMANDS
    | (1 << 38)  # SEND_MESSAGES_IN_THREADS
)
# Discord's per-file upload limit by a server's boost tier (what a bot token may upload there).
BOOST_UPLOAD_LIMITS = {0: 10 * MiB, 1: 10 * MiB, 2: 50 * MiB, 3: 100 * MiB}


class World:
    """The state every part of the fake reads and changes (one guild, one channel)."""

    def __init__(
        self,
        *,
        token: str,
        attachment_size_limit: int,
        max_request_bytes: int,
        cdn_ttl: float,
    ) -> None:
        self.token = token
        self.attachment_size_limit = attachment_size_limit
        self.max_request_bytes = max_request_bytes
        self.cdn_ttl = cdn_ttl
        self.port = 0
        self.time_offset = 0.0  # added to the clock by advance_time()

        # Switches (faults and optional protocol shapes), all off by default.
        self.ack_heartbeats = True
        self.expire_on_arrival = False  # new interactions start expired (a bot far too slow)
        self.send_app_permissions = True  # False: interactions omit app_permissions (allowed)
        # Discord's 3 seconds: with a number, a callback later than that after the interaction's
        # creation finds it gone (10062), as on Discord. Off (None) by default: a loaded test
        # machine is slower than a real deployment, and the tests about it turn it on.
        self.ack_deadline: float | None = None
        # Seconds between an interaction's creation (its id's timestamp) and its delivery on the
        # gateway: a slow network or a busy gateway, which eat into the 3 seconds.
        self.gateway_lag = 0.0
        # Seconds Discord's clock runs behind the bot host's (negative: ahead): the ids Discord
        # mints carry its own time, so a host clock off by this much sees them that old.
        self.clock_skew = 0.0
        # The bot's permissions in a channel where they are not every permission (what the
        # server's roles and overwrites leave it): interactions there carry them as
        # app_permissions, and Create Message there needs Send Messages and, for a reply, Read
        # Message History (403/50013 otherwise, as Discord documents).
        self.bot_channel_permissions: dict[str, int] = {}
        self.premium_tier = 0  # the guild's boost tier (its bot-token upload limit)

        self.app_id = p.snowflake()
        self.bot_user = p.user(self.app_id, "remixbot", bot=True)
        self.owner = p.user(p.snowflake(), "owner")
        self.alice = p.user(p.snowflake(), "alice")
        self.bob = p.user(p.snowflake(), "bob")
        self.guild_id = p.snowflake()
        self.channel_id = p.snowflake()
        self.channels = {self.channel_id: p.text_channel(self.channel_id, self.guild_id)}
        self.guild_ids = [self.guild_id]  # every guild; the members are in all of them
        self.roles: dict[str, dict[str, Any]] = {}  # guild roles besides @everyone, by id
        self.member_roles: dict[str, list[str]] = {}  # user id -> role ids
        # The owner may do everything; the others what @everyone and their roles allow.
        self.everyone_permissions = MEMBER_PERMISSIONS
        self.dm_channels: dict[str, str] = {}  # user id -> their DM channel with the bot
        self.dms_closed: set[str] = set()  # users who do not accept DMs from the bot

        self.commands: dict[str | None, list[dict[str, Any]]] = {}  # guild id (None = global)
        # The guild's command permissions, by command id (the app id for app-wide ones).
        self.command_permissions: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, StoredMessage] = {}
        self.attachments: dict[str, StoredAttachment] = {}
        self.interactions: dict[str, FakeInteraction] = {}  # by token

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """The value for DISCORD_API_BASE."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """The value for DISCORD_GATEWAY_URL."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    def now(self) -> float:
        """The fake's clock: wall time plus :meth:`advance_time` offsets."""
        return time.time() + self.time_offset

    def advance_time(self, seconds: float) -> None:
        """Move the fake's clock forward (expires CDN URLs and interaction tokens)."""
        self.time_offset += seconds

    def add_guild(self, *, shard: int | None = None, shard_count: int = 1) -> tuple[str, str]:
        """Another guild with one text channel, on `shard` of `shard_count` when given (its
        events go to that shard's session): (guild id, channel id)."""
        guild = p.snowflake() if shard is None else p.snowflake_on_shard(shard, shard_count)
        channel = p.snowflake()
        self.guild_ids.append(guild)
        self.channels[channel] = p.text_channel(channel, guild)
        return guild, channel

    @property
    def guild_upload_limit(self) -> int:
        """The per-file limit of uploads with the bot token: the server's, by its boost tier.
        An interaction's ``attachment_size_limit`` is the most of this and the member's own
        (Nitro) limit, so it is never below it; it binds only responses to the interaction."""
        return min(self.attachment_size_limit, BOOST_UPLOAD_LIMITS[self.premium_tier])

    def app_permissions(self, channel_id: str) -> int:
        """The bot's permissions in a guild channel (every permission unless set otherwise)."""
        return self.bot_channel_permissions.get(channel_id, int(p.ALL_PERMISSIONS))

    def members(self) -> tuple[dict[str, Any], ...]:
        """The guild's members (their user objects)."""
        return (self.owner, self.alice, self.bob)

    def member_permissions(self, user_id: str) -> int:
        """A member's permissions in the guild: everything for the owner (and administrators),
        else @everyone's and their roles' together."""
        if user_id == self.owner["id"]:
            return EVERY_PERMISSION
        perms = self.everyone_permissions
        for role_id in self.member_roles.get(user_id, []):
            perms |= int(self.roles.get(role_id, {}).get("permissions", "0"))
        return EVERY_PERMISSION if perms & ADMINISTRATOR else perms

    def guild_of(self, channel_id: str) -> str | None:
        """The guild a channel belongs to (None for a DM channel)."""
        channel = self.channels.get(channel_id, {})
        return channel.get("guild_id")

    def dm_channel(self, user: dict[str, Any]) -> str:
        """The user's DM channel with the bot (opened on first use)."""
        if user["id"] not in self.dm_channels:
            channel_id = p.snowflake()
            self.channels[channel_id] = p.dm_channel(channel_id, user)
            self.dm_channels[user["id"]] = channel_id
        return self.dm_channels[user["id"]]

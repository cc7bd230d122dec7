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

        self.commands: dict[str | None, list[dict[str, Any]]] = {}  # guild id (None = global)
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

    def guild_of(self, channel_id: str) -> str:
        """The guild a channel is in."""
        channel = self.channels.get(channel_id)
        return channel["guild_id"] if channel is not None else self.guild_id

    def members(self) -> tuple[dict[str, Any], ...]:
        """The guild's members (their user objects)."""
        return (self.owner, self.alice, self.bob)

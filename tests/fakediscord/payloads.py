"""Payload builders that always carry the keys discord.py 2.7 requires (reference B4)."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
ALL_PERMISSIONS = "2248473465835073"

_counter = itertools.count()
_lock = threading.Lock()


def snowflake(at: float | None = None) -> str:
    """Mint a snowflake from the clock (``at`` in Unix seconds), unique within the process."""
    ms = int((time.time() if at is None else at) * 1000)
    with _lock:
        inc = next(_counter) & 0xFFF
    return str(((ms - DISCORD_EPOCH_MS) << 22) | (1 << 17) | inc)


def shard_of(guild_id: str | int, shard_count: int) -> int:
    """The shard whose gateway session receives a guild's events: Discord's rule."""
    return (int(guild_id) >> 22) % shard_count


def snowflake_on_shard(shard: int, shard_count: int) -> str:
    """A fresh snowflake (a guild id) whose guild lives on `shard` of `shard_count`."""
    at = time.time()
    while True:
        value = snowflake(at)
        if shard_of(value, shard_count) == shard:
            return value
        at += 0.001  # the next millisecond moves the shard by one


def snowflake_time(value: str | int) -> float:
    """Unix seconds encoded in a snowflake."""
    return ((int(value) >> 22) + DISCORD_EPOCH_MS) / 1000


def iso_now() -> str:
    """The current time as Discord's ISO 8601 timestamp."""
    return datetime.now(UTC).isoformat()


def user(user_id: str, username: str, *, bot: bool = False) -> dict[str, Any]:
    """A user object."""
    data: dict[str, Any] = {
        "id": user_id,
        "username": username,
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
    }
    if bot:
        data["bot"] = True
    return data


def member(
    user_data: dict[str, Any],
    permissions: str = ALL_PERMISSIONS,
    roles: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """A guild member object, with the ``roles`` and ``flags`` keys discord.py requires."""
    return {
        "user": user_data,
        "roles": list(roles),
        "flags": 0,
        "joined_at": "2025-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "permissions": permissions,
    }


def application(app_id: str, owner: dict[str, Any]) -> dict[str, Any]:
    """The ``GET /oauth2/applications/@me`` reply."""
    return {
        "id": app_id,
        "name": "remixbot",
        "description": "",
        "icon": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": owner,
        "verify_key": "0" * 64,
        "flags": 0,
        "interactions_endpoint_url": None,
    }


def text_channel(channel_id: str, guild_id: str, name: str = "general") -> dict[str, Any]:
    """A guild text channel."""
    return {"id": channel_id, "type": 0, "name": name, "position": 0, "guild_id": guild_id}


def dm_channel(channel_id: str, recipient: dict[str, Any]) -> dict[str, Any]:
    """A DM channel between the bot and one user."""
    return {
        "id": channel_id,
        "type": 1,
        "recipients": [recipient],
        "last_message_id": None,
        "flags": 0,
    }


def role(role_id: str, name: str, position: int = 1, permissions: int = 0) -> dict[str, Any]:
    """A guild role object (no permissions of its own unless given)."""
    return {
        "id": role_id,
        "name": name,
        "permissions": str(permissions),
        "position": position,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def guild_create(
    guild_id: str,
    channels: list[dict[str, Any]],
    name: str = "Test",
    roles: list[dict[str, Any]] | None = None,
    *,
    owner_id: str = "1",
    everyone_permissions: str = ALL_PERMISSIONS,
    premium_tier: int = 0,
) -> dict[str, Any]:
    """A GUILD_CREATE payload with the @everyone role, any other roles and the given channels."""
    return {
        "id": guild_id,
        "name": name,
        "unavailable": False,
        "premium_tier": premium_tier,
        "member_count": 2,
        "large": False,
        "owner_id": owner_id,
        "roles": [
            {
                "id": guild_id,
                "name": "@everyone",
                "permissions": everyone_permissions,
                "position": 0,
            },
            *(roles or []),
        ],
        "channels": channels,
        "members": [],
        "emojis": [],
        "stickers": [],
        "threads": [],
        "features": [],
    }


def ready(
    bot_user: dict[str, Any], guild_ids: list[str], session_id: str, resume_url: str, app_id: str
) -> dict[str, Any]:
    """A READY payload with ``resume_gateway_url`` and unavailable guilds."""
    return {
        "v": 10,
        "user": bot_user,
        "guilds": [{"id": g, "unavailable": True} for g in guild_ids],
        "session_id": session_id,
        "resume_gateway_url": resume_url,
        "application": {"id": app_id, "flags": 0},
        "private_channels": [],
    }


def message(
    message_id: str,
    channel_id: str,
    author: dict[str, Any],
    *,
    content: str = "",
    attachments: list[dict[str, Any]] | None = None,
    components: list[dict[str, Any]] | None = None,
    embeds: list[dict[str, Any]] | None = None,
    message_type: int = 0,
    flags: int = 0,
    guild_id: str | None = None,
    webhook_id: str | None = None,
) -> dict[str, Any]:
    """A message object with every key discord.py's parser reads."""
    data: dict[str, Any] = {
        "id": message_id,
        "channel_id": channel_id,
        "type": message_type,
        "content": content,
        "author": author,
        "attachments": attachments or [],
        "embeds": embeds or [],
        "components": components or [],
        "mentions": [],
        "mention_roles": [],
        "mention_everyone": False,
        "pinned": False,
        "tts": False,
        "timestamp": iso_now(),
        "edited_timestamp": None,
        "flags": flags,
        "reactions": [],
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
    if webhook_id is not None:
        data["webhook_id"] = webhook_id
    return data


def interaction_base(
    *,
    interaction_type: int,
    token: str,
    app_id: str,
    guild_id: str,
    channel: dict[str, Any],
    user_data: dict[str, Any],
    attachment_size_limit: int,
    interaction_id: str | None = None,
    roles: list[str] | tuple[str, ...] = (),
    permissions: str = ALL_PERMISSIONS,
    app_permissions: str | None = None,
) -> dict[str, Any]:
    """The part every guild interaction shares, including ``version`` and ``attachment_size_limit``
    (``app_permissions``: the bot's in the channel, every permission unless given)."""
    return {
        "id": interaction_id or snowflake(),
        "application_id": app_id,
        "type": interaction_type,
        "token": token,
        "version": 1,
        "attachment_size_limit": attachment_size_limit,
        "guild_id": guild_id,
        "channel_id": channel["id"],
        "channel": channel,
        "member": member(user_data, permissions, roles=roles),
        "app_permissions": ALL_PERMISSIONS if app_permissions is None else app_permissions,
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": guild_id},
        "context": 0,
    }


# What the bot may do in a DM with a member (Discord sends app_permissions there too).
DM_APP_PERMISSIONS = str((1 << 6) | (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16))


def dm_interaction_base(
    *,
    interaction_type: int,
    token: str,
    app_id: str,
    channel: dict[str, Any],
    user_data: dict[str, Any],
    attachment_size_limit: int,
) -> dict[str, Any]:
    """An interaction in the member's DM with the bot: a top-level ``user``, no guild or member
    (context 1, BOT_DM; a guild install is authorized by "0" there)."""
    return {
        "id": snowflake(),
        "application_id": app_id,
        "type": interaction_type,
        "token": token,
        "version": 1,
        "attachment_size_limit": attachment_size_limit,
        "channel_id": channel["id"],
        "channel": channel,
        "user": user_data,
        "app_permissions": DM_APP_PERMISSIONS,
        "locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": "0"},
        "context": 1,
    }


def option(name: str, value: Any, option_type: int | None = None) -> dict[str, Any]:
    """One slash-command option value; the type is inferred from the value when not given."""
    if option_type is None:
        if isinstance(value, bool):
            option_type = 5
        elif isinstance(value, int):
            option_type = 4
        elif isinstance(value, float):
            option_type = 10
        else:
            option_type = 3
    return {"name": name, "type": option_type, "value": value}


def reaction_add(
    *,
    user_data: dict[str, Any],
    channel_id: str,
    message_id: str,
    guild_id: str | None,
    emoji: str,
    message_author_id: str | None = None,
    roles: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """A MESSAGE_REACTION_ADD payload for a unicode emoji (guild None: in a DM, no member)."""
    data: dict[str, Any] = {
        "user_id": user_data["id"],
        "channel_id": channel_id,
        "message_id": message_id,
        "emoji": {"id": None, "name": emoji},
        "burst": False,
        "type": 0,
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
        data["member"] = member(user_data, roles=roles)
    if message_author_id is not None:
        data["message_author_id"] = message_author_id
    return data

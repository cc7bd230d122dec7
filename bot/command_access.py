"""Whether a member may use an application command in a channel, by the server's command
permissions (Server Settings → Integrations), as Discord evaluates them.

Discord enforces these only when the command itself is used. A button or a reaction under a
result starts the same paid work as /remix, so the bot applies /remix's permissions to them too.
Discord-free: the overwrites come in as plain values (the Discord side fetches them).

The rule, after Discord's documentation ("Application Command Permissions"): a command is usable
only if both the channel check and the member check pass.

- channel: the command's overwrite for this channel, else its "all channels" overwrite
  (id = guild id - 1), else the same two at the application level; none means allowed;
- member: the command's overwrite for the user, else its overwrites for the member's roles
  (allowed if any of them allows), else its @everyone overwrite (id = guild id), else the same
  at the application level; none means the command's default member permissions decide.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

ROLE, USER, CHANNEL = 1, 2, 3
ADMINISTRATOR = 1 << 3


@dataclass(frozen=True)
class Overwrite:
    """One permission overwrite: a role, user or channel id, and whether it allows."""

    id: int
    type: int  # ROLE, USER or CHANNEL
    allowed: bool


def _channel_rule(overwrites: Sequence[Overwrite], guild_id: int, channel_id: int) -> bool | None:
    channels = {o.id: o.allowed for o in overwrites if o.type == CHANNEL}
    if channel_id in channels:
        return channels[channel_id]
    return channels.get(guild_id - 1)


def _member_rule(
    overwrites: Sequence[Overwrite], guild_id: int, user_id: int, role_ids: Collection[int]
) -> bool | None:
    users = {o.id: o.allowed for o in overwrites if o.type == USER}
    if user_id in users:
        return users[user_id]
    roles = [o.allowed for o in overwrites if o.type == ROLE and o.id in role_ids]
    if roles:
        return any(roles)
    everyone = [o.allowed for o in overwrites if o.type == ROLE and o.id == guild_id]
    return everyone[0] if everyone else None


def command_allowed(
    command: Sequence[Overwrite],
    application: Sequence[Overwrite],
    *,
    guild_id: int,
    channel_id: int,
    user_id: int,
    role_ids: Collection[int],
    member_permissions: int,
    default_member_permissions: int | None,
) -> bool:
    """True when the member may use the command in the channel (see the module docstring)."""
    channel = _channel_rule(command, guild_id, channel_id)
    if channel is None:
        channel = _channel_rule(application, guild_id, channel_id)
    if channel is False:
        return False
    member = _member_rule(command, guild_id, user_id, role_ids)
    if member is None:
        member = _member_rule(application, guild_id, user_id, role_ids)
    if member is not None:
        return member
    if default_member_permissions is None or member_permissions & ADMINISTRATOR:
        return True
    return member_permissions & default_member_permissions == default_member_permissions

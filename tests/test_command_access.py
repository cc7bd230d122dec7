"""The server's command permissions, as Discord evaluates them (bot/command_access.py)."""

from __future__ import annotations

import pytest

from bot.command_access import CHANNEL, ROLE, USER, Overwrite, command_allowed

GUILD, CHAN, OTHER, USER_ID, ROLE_ID = 1000, 2000, 3000, 4000, 5000
SEND = 1 << 11
MANAGE = 1 << 5


def allowed(
    command: list[Overwrite],
    app: list[Overwrite] | None = None,
    *,
    channel: int = CHAN,
    roles: tuple[int, ...] = (),
    perms: int = SEND,
    default: int | None = None,
) -> bool:
    return command_allowed(
        command,
        app or [],
        guild_id=GUILD,
        channel_id=channel,
        user_id=USER_ID,
        role_ids=roles,
        member_permissions=perms,
        default_member_permissions=default,
    )


@pytest.mark.parametrize(
    ("command", "app", "expected"),
    [
        ([], [], True),  # nothing set: everyone, everywhere
        ([Overwrite(CHAN, CHANNEL, False)], [], False),  # this channel closed
        ([Overwrite(OTHER, CHANNEL, False)], [], True),  # another channel closed
        ([Overwrite(GUILD - 1, CHANNEL, False)], [], False),  # all channels closed
        # ... except this one, opened by name
        ([Overwrite(GUILD - 1, CHANNEL, False), Overwrite(CHAN, CHANNEL, True)], [], True),
        ([], [Overwrite(CHAN, CHANNEL, False)], False),  # the app closed here
        ([Overwrite(CHAN, CHANNEL, True)], [Overwrite(CHAN, CHANNEL, False)], True),  # command wins
        ([Overwrite(GUILD, ROLE, False)], [], False),  # @everyone denied
        ([Overwrite(GUILD, ROLE, False), Overwrite(USER_ID, USER, True)], [], True),  # the user
        ([Overwrite(USER_ID, USER, False)], [Overwrite(USER_ID, USER, True)], False),
    ],
)
def test_channel_and_member_overwrites(
    command: list[Overwrite], app: list[Overwrite], expected: bool
) -> None:
    assert allowed(command, app) is expected


def test_a_role_allows_when_any_of_the_member_s_roles_does() -> None:
    rules = [Overwrite(GUILD, ROLE, False), Overwrite(ROLE_ID, ROLE, True)]
    assert allowed(rules, roles=(ROLE_ID,)) is True
    assert allowed(rules, roles=()) is False


def test_without_overwrites_the_default_member_permissions_decide() -> None:
    assert allowed([], default=MANAGE, perms=SEND) is False
    assert allowed([], default=MANAGE, perms=SEND | MANAGE) is True
    assert allowed([], default=MANAGE, perms=1 << 3) is True  # administrators
    # An overwrite for the member replaces the default.
    assert allowed([Overwrite(USER_ID, USER, True)], default=MANAGE, perms=SEND) is True

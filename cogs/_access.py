"""/remix's command permissions in a server, for the controls that start the same work (buttons,
selects, modals, reactions): fetched from Discord, kept a minute, judged by
bot/command_access.py. Fetched at ready in the background, so a first click does not wait for
Discord. If Discord is slow, the last permissions seen are used (and the fetch goes on for the
next click); if it cannot say at all, the controls stay open (the server's own channel list
still applies)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import discord

from bot.command_access import Overwrite, command_allowed

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
FETCH_SECONDS = 2.0
# Servers whose permissions are fetched at ready: a small bot's all; a big one's come on use
# (one request each, which would crowd the start otherwise).
WARM_GUILDS = 25
NOT_ALLOWED = "You can't use /remix in this channel, so its controls don't work here either."


@dataclass(frozen=True)
class _Permissions:
    command: tuple[Overwrite, ...]
    application: tuple[Overwrite, ...]
    default_member_permissions: int | None
    at: float


def _overwrites(entry: dict | None) -> tuple[Overwrite, ...]:
    if entry is None:
        return ()
    return tuple(
        Overwrite(int(p["id"]), int(p["type"]), bool(p["permission"]))
        for p in entry.get("permissions", [])
    )


class CommandAccess:
    """Answers "may this member use /remix here?" for interactions and reactions."""

    def __init__(self, client: discord.Client, name: str = "remix") -> None:
        self.client = client
        self.name = name
        self._command: tuple[int, int | None] | None = None  # (id, default permissions)
        self._guilds: dict[int, _Permissions] = {}
        self._fetching: dict[int, asyncio.Task[_Permissions | None]] = {}

    async def warm(self, guild_ids: list[int]) -> None:
        """Fetch the command and the first servers' permissions ahead of any click (failures
        are only logged: a click fetches again)."""
        for guild_id in guild_ids[:WARM_GUILDS]:
            try:
                async with asyncio.timeout(FETCH_SECONDS * 5):
                    await asyncio.shield(self._fetch_shared(guild_id))
            except Exception as exc:
                log.info("command permissions of server %s not fetched (%s)", guild_id, exc)

    async def allowed(
        self,
        guild_id: int | None,
        channel_id: int | None,
        member: discord.abc.User | None,
        permissions: int,
    ) -> bool:
        """True when the member may use /remix in the channel (always in DMs); Discord is
        asked for at most FETCH_SECONDS."""
        if guild_id is None or channel_id is None or not isinstance(member, discord.Member):
            return True
        try:
            found = await self._permissions(guild_id)
        except Exception as exc:  # Discord could not say: the controls stay open
            log.info("command permissions of server %s unknown (%r)", guild_id, exc)
            return True
        if found is None:
            return True
        return command_allowed(
            found.command,
            found.application,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=member.id,
            role_ids={r.id for r in member.roles},
            member_permissions=permissions,
            default_member_permissions=found.default_member_permissions,
        )

    async def _permissions(self, guild_id: int) -> _Permissions | None:
        """The server's permissions: a minute's cache, else Discord's answer within
        FETCH_SECONDS, else (still fetching for the next click) the last ones seen."""
        cached = self._guilds.get(guild_id)
        if cached is not None and time.monotonic() - cached.at < CACHE_SECONDS:
            return cached
        try:
            async with asyncio.timeout(FETCH_SECONDS):
                return await asyncio.shield(self._fetch_shared(guild_id))
        except TimeoutError:
            if cached is None:
                raise
            log.info("command permissions of server %s: Discord is slow; the last ones", guild_id)
            return cached

    def _fetch_shared(self, guild_id: int) -> asyncio.Task[_Permissions | None]:
        """One fetch per server at a time, which every click waiting for it shares."""
        task = self._fetching.get(guild_id)
        if task is None:
            task = asyncio.ensure_future(self._fetch(guild_id))
            self._fetching[guild_id] = task
            task.add_done_callback(lambda done: self._fetched(guild_id, done))
        return task

    def _fetched(self, guild_id: int, task: asyncio.Task[_Permissions | None]) -> None:
        """A fetch ended: the next one may start; a failure nobody waited for is logged here."""
        self._fetching.pop(guild_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.info("command permissions of server %s: %r", guild_id, task.exception())

    async def _fetch(self, guild_id: int) -> _Permissions | None:
        app_id = self.client.application_id
        if app_id is None:
            return None
        if self._command is None:
            for cmd in await self.client.http.get_global_commands(app_id):
                if cmd["name"] == self.name and cmd.get("type", 1) == 1:
                    default = cmd.get("default_member_permissions")
                    self._command = (int(cmd["id"]), None if default is None else int(default))
            if self._command is None:
                return None
        command_id, default = self._command
        entries = await self.client.http.get_guild_application_command_permissions(app_id, guild_id)
        by_id = {int(e["id"]): e for e in entries}
        found = _Permissions(
            _overwrites(by_id.get(command_id)),  # type: ignore[arg-type]
            _overwrites(by_id.get(int(app_id))),  # type: ignore[arg-type]
            default,
            time.monotonic(),
        )
        self._guilds[guild_id] = found
        return found

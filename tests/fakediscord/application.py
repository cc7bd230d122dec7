"""The application: who the bot is (``/users/@me``, ``/oauth2/applications/@me``), its
commands, global or per guild (bulk overwrite and list), and the guild's command permissions
(read-only for a bot, as on Discord: admins set them in the client)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakediscord import payloads as p
from tests.fakediscord.rest import SNOWFLAKE, Req, Route, error, json_response, routes
from tests.fakediscord.world import World


class Application:
    """The application routes and its registered commands."""

    def __init__(self, world: World) -> None:
        self.world = world

    def routes(self) -> list[Route]:
        """Identity and ``/applications/{app}[/guilds/{guild}]/commands``."""
        app = SNOWFLAKE.format("app")
        found = [
            *routes("GET", r"/users/@me", self._users_me, "bot"),
            *routes("GET", r"/oauth2/applications/@me", self._app_me, "bot"),
        ]
        for guild in ("", "/guilds/" + SNOWFLAKE.format("guild")):
            commands = rf"/applications/{app}{guild}/commands"
            found += routes("PUT", commands, self._put_commands, "bot")
            found += routes("GET", commands, self._get_commands, "bot")
        permissions = (
            rf"/applications/{app}/guilds/{SNOWFLAKE.format('guild')}/commands/permissions"
        )
        found += routes("GET", permissions, self._get_permissions, "bot")
        return found

    def set_command_permissions(self, command: str, overwrites: list[dict[str, Any]]) -> None:
        """What an admin sets in Server Settings → Integrations: overwrites (``id``, ``type`` 1
        role, 2 user, 3 channel, ``permission``) for one command by name, or for the whole
        application with ``command=""``."""
        w = self.world
        if command:
            found = self.find_command(command)
            if found is None:
                raise AssertionError(f"no command {command!r} is registered")
            target = found["id"]
        else:
            target = w.app_id
        w.command_permissions[target] = {
            "id": target,
            "application_id": w.app_id,
            "guild_id": w.guild_id,
            "permissions": overwrites,
        }

    async def _get_permissions(self, req: Req) -> web.StreamResponse:
        if req.match["guild"] != self.world.guild_id:
            return error(404, "Unknown Guild", 10004)
        return json_response(list(self.world.command_permissions.values()))

    def find_command(self, name: str) -> dict[str, Any] | None:
        """A registered command by name, the guild's before the global ones."""
        for guild in (self.world.guild_id, None):
            for cmd in self.world.commands.get(guild, []):
                if cmd["name"] == name:
                    return cmd
        return None

    async def _users_me(self, req: Req) -> web.StreamResponse:
        return json_response(self.world.bot_user)

    async def _app_me(self, req: Req) -> web.StreamResponse:
        return json_response(p.application(self.world.app_id, self.world.owner))

    async def _put_commands(self, req: Req) -> web.StreamResponse:
        guild = req.match.get("guild")
        if req.match["app"] != self.world.app_id:
            return error(404, "Unknown Application", 10002)
        old = {c["name"]: c for c in self.world.commands.get(guild, [])}
        stored = []
        for body in req.body or []:
            prev = old.get(body["name"])
            cmd = {
                "default_member_permissions": None,
                "description": "",  # message and user commands have none; Discord sends ""
                "dm_permission": True,
                "nsfw": False,
                "options": [],
                "type": 1,
                **body,
                "id": prev["id"] if prev else p.snowflake(),
                "application_id": self.world.app_id,
                "version": p.snowflake(),
            }
            if guild:
                cmd["guild_id"] = guild
            stored.append(cmd)
        self.world.commands[guild] = stored
        return json_response(stored)

    async def _get_commands(self, req: Req) -> web.StreamResponse:
        return json_response(self.world.commands.get(req.match.get("guild"), []))

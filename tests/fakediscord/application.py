"""The application: who the bot is (``/users/@me``, ``/oauth2/applications/@me``) and its
slash commands, global or per guild (bulk overwrite and list)."""

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
        return found

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

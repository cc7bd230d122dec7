"""The guild, its members and roles: the GUILD_CREATE payload, ``GET /guilds/{g}/members/{u}``
and giving a member a role."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakediscord import payloads as p
from tests.fakediscord.rest import SNOWFLAKE, Req, Route, error, json_response, routes
from tests.fakediscord.world import World


class Guilds:
    """The one guild: its routes, the payload that announces it, and its roles."""

    def __init__(self, world: World) -> None:
        self.world = world

    def routes(self) -> list[Route]:
        """``/guilds/{guild}/members/{user}``."""
        member = rf"/guilds/{SNOWFLAKE.format('guild')}/members/{SNOWFLAKE.format('user')}"
        return routes("GET", member, self._member, "bot")

    def guild_create(self, guild_id: str | None = None) -> dict[str, Any]:
        """The GUILD_CREATE payload for a guild (the first one by default)."""
        w = self.world
        guild = guild_id or w.guild_id
        return p.guild_create(
            guild,
            [c for c in w.channels.values() if c.get("guild_id") == guild],
            roles=list(w.roles.values()),
            owner_id=w.owner["id"],
            everyone_permissions=str(w.everyone_permissions),
            premium_tier=w.premium_tier,
        )

    def give_role(
        self, user: dict[str, Any], name: str, *, announce: bool, permissions: int = 0
    ) -> tuple[str, bool]:
        """Give the member the role named ``name`` (made with ``permissions`` if new); return its
        id and whether it is new and to be announced now (GUILD_ROLE_CREATE).
        ``announce=False``: see ``FakeDiscord.give_role``."""
        w = self.world
        role_id = next((r for r, data in w.roles.items() if data["name"] == name), None)
        created = False
        if role_id is None and not announce:
            role_id = p.snowflake()
        elif role_id is None:
            role_id = p.snowflake()
            w.roles[role_id] = p.role(
                role_id, name, position=len(w.roles) + 1, permissions=permissions
            )
            created = True
        w.member_roles.setdefault(user["id"], []).append(role_id)
        return role_id, created

    async def _member(self, req: Req) -> web.StreamResponse:
        if req.match["guild"] not in self.world.guild_ids:
            return error(404, "Unknown Guild", 10004)
        user = next((u for u in self.world.members() if u["id"] == req.match["user"]), None)
        if user is None:
            return error(404, "Unknown Member", 10007)
        return json_response(p.member(user, roles=self.world.member_roles.get(user["id"], [])))

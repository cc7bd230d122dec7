"""Direct messages: ``POST /users/@me/channels`` opens (or finds) a user's DM channel with the
bot. Sending there is an ordinary Create Message (messages.py), refused with 403/50007 for a user
who does not accept DMs from the bot (``World.dms_closed``)."""

from __future__ import annotations

from aiohttp import web

from tests.fakediscord.rest import Req, Route, error, json_response, routes
from tests.fakediscord.world import World


class DirectMessages:
    """The DM channel route."""

    def __init__(self, world: World) -> None:
        self.world = world

    def routes(self) -> list[Route]:
        """``/users/@me/channels``."""
        return routes("POST", r"/users/@me/channels", self._open, "bot")

    async def _open(self, req: Req) -> web.StreamResponse:
        recipient = str((req.body or {}).get("recipient_id", ""))
        user = next((u for u in self.world.members() if u["id"] == recipient), None)
        if user is None:
            return error(400, "Invalid Recipient(s)", 50033)
        return json_response(self.world.channels[self.world.dm_channel(user)])

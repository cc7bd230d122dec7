"""Interactions and their webhooks: the callback (types 4-7, 9 opens a modal), followups and the interaction's
messages (``@original`` or by id), authorized by the URL's token for 15 minutes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakediscord import payloads as p
from tests.fakediscord.messages import Messages
from tests.fakediscord.models import FakeInteraction, StoredMessage
from tests.fakediscord.rest import SNOWFLAKE, TOKEN, Req, Route, error, json_response, routes
from tests.fakediscord.world import World

INTERACTION_TTL = 15 * 60  # seconds an interaction token stays valid (Discord's 15 minutes)


class Interactions:
    """The interaction callback and webhook routes."""

    def __init__(self, world: World, messages: Messages) -> None:
        self.world = world
        self.messages = messages

    def routes(self) -> list[Route]:
        """``/interactions/{id}/{token}/callback`` and ``/webhooks/{app}/{token}[/messages/{m}]``."""
        callback = rf"/interactions/{SNOWFLAKE.format('iid')}/{TOKEN}/callback"
        webhook = rf"/webhooks/{SNOWFLAKE.format('app')}/{TOKEN}"
        message = rf"{webhook}/messages/(?P<message>\d+|@original)"
        return [
            *routes("POST", callback, self._callback, "none"),
            *routes("POST", webhook, self._followup, "none"),
            *routes("GET PATCH DELETE", message, self._message, "none"),
        ]

    def original(self, interaction: FakeInteraction) -> StoredMessage | None:
        """The original response message of an interaction, if any."""
        return self.world.messages.get(interaction.original_id or "")

    def _live(self, token: str) -> FakeInteraction | None:
        inter = self.world.interactions.get(token)
        if inter is not None and self.world.now() > inter.created + INTERACTION_TTL:
            inter.expired = True
        return inter

    def _response_message(self, inter: FakeInteraction, flags: int = 0) -> StoredMessage:
        """A message the application posts for an interaction (authored by its bot user)."""
        return StoredMessage(
            id=p.snowflake(),
            channel_id=inter.channel_id,
            author=self.world.bot_user,
            type=20 if inter.type == 2 else 19,
            webhook_id=self.world.app_id,
            interaction_id=inter.id,
            flags=flags,
        )

    async def _callback(self, req: Req) -> web.StreamResponse:
        inter = self._live(req.match["token"])
        if inter is None or inter.id != req.match["iid"] or inter.expired:
            return error(404, "Unknown interaction", 10062)
        now = self.world.now()
        deadline = self.world.ack_deadline
        if inter.response_type is None and deadline is not None and now > inter.created + deadline:
            # Not acknowledged in time: Discord has invalidated the token ("This interaction
            # failed" for the member).
            inter.expired = inter.missed_deadline = True
            return error(404, "Unknown interaction", 10062)
        if inter.response_type is not None:
            return error(400, "Interaction has already been acknowledged.", 40060)
        body = req.body or {}
        kind = body.get("type")
        data = body.get("data") or {}
        inter.response_type = kind
        inter.acknowledged = now
        message: StoredMessage | None = None
        if kind in (4, 5):
            message = self._response_message(inter)
            if kind == 5:
                message.flags = 128 | (data.get("flags", 0) & 64)
            else:
                self.messages.apply(message, data, req.call.files, editing=False)
            self.world.messages[message.id] = message
            inter.original_id = message.id
        elif kind == 9:  # MODAL: the member's client opens it; submitting is a new interaction
            inter.modal = data
        elif kind in (6, 7) and inter.message_id:
            inter.original_id = inter.message_id
            message = self.world.messages.get(inter.message_id)
            if kind == 7 and message is not None:
                self.messages.apply(message, data, req.call.files, editing=True)
        reply: dict[str, Any] = {
            "interaction": {
                "id": inter.id,
                "type": inter.type,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(message and message.flags & 64),
            },
            "resource": {"type": kind},
        }
        if message is not None and kind in (4, 7):
            reply["interaction"]["response_message_id"] = message.id
            reply["resource"]["message"] = self.messages.message_json(message)
        return json_response(reply)

    def _webhook_interaction(self, req: Req) -> FakeInteraction | web.Response:
        inter = self._live(req.match["token"])
        if inter is None or req.match["app"] != self.world.app_id:
            return error(404, "Unknown Webhook", 10015)
        if inter.expired:
            return error(401, "Invalid Webhook Token", 50027)
        return inter

    async def _followup(self, req: Req) -> web.StreamResponse:
        inter = self._webhook_interaction(req)
        if not isinstance(inter, FakeInteraction):
            return inter
        body = req.body or {}
        # A followup is always a new message. (Discord once turned the first followup after a
        # type-5 defer into the "thinking…" message; that is deprecated, and a bot must edit
        # the original response instead: the "thinking…" stays until it does.)
        msg = self._response_message(inter, flags=body.get("flags", 0) & 64)
        self.messages.apply(msg, body, req.call.files, editing=False)
        self.world.messages[msg.id] = msg
        return json_response(self.messages.message_json(msg))

    async def _message(self, req: Req) -> web.StreamResponse:
        inter = self._webhook_interaction(req)
        if not isinstance(inter, FakeInteraction):
            return inter
        mid = req.match["message"]
        if mid == "@original":
            mid = inter.original_id or ""
        msg = self.world.messages.get(mid)
        if msg is None or msg.deleted:
            return error(404, "Unknown Message", 10008)
        return self.messages.verb(req, msg)

"""Channels and messages: Create Message (with nonces), get/edit/delete, reactions, and the
message object as Discord sends it. Interaction responses are messages too (interactions.py)."""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from tests.fakediscord import payloads as p
from tests.fakediscord.cdn import Cdn
from tests.fakediscord.models import StoredAttachment, StoredMessage, UploadedFile, guess_type
from tests.fakediscord.rest import SNOWFLAKE, Req, Route, error, json_response, routes
from tests.fakediscord.world import READ_MESSAGE_HISTORY, SEND_MESSAGES, World

NONCE_WINDOW = 300.0  # seconds a Create Message nonce is remembered ("a few minutes")
# Discord's answer to a reply whose message is gone (unless fail_if_not_exists is false).
UNKNOWN_REPLY = {
    "message": "Invalid Form Body",
    "code": 50035,
    "errors": {
        "message_reference": {
            "_errors": [{"code": "REPLIES_UNKNOWN_MESSAGE", "message": "Unknown message"}]
        }
    },
}


class Messages:
    """The channel message routes, and the message model the other resources share."""

    def __init__(self, world: World, cdn: Cdn) -> None:
        self.world = world
        self.cdn = cdn

    def routes(self) -> list[Route]:
        """``/channels/{channel}/messages[/{message}[/reactions/{emoji}/{who}]]``."""
        messages = rf"/channels/{SNOWFLAKE.format('channel')}/messages"
        message = rf"{messages}/{SNOWFLAKE.format('message')}"
        reaction = rf"{message}/reactions/(?P<emoji>[^/]+)/(?P<who>@me|\d+)"
        return [
            *routes("POST", messages, self._create, "bot"),
            *routes("GET PATCH DELETE", message, self._message, "bot"),
            *routes("PUT DELETE", reaction, self._reaction, "bot"),
        ]

    # ------------------------------------------------------------------ the model

    def message_json(self, msg: StoredMessage) -> dict[str, Any]:
        """A message object as Discord sends it."""
        data = p.message(
            msg.id,
            msg.channel_id,
            msg.author,
            content=msg.content,
            attachments=[self.cdn.attachment_json(a) for a in msg.attachments],
            components=msg.components,
            embeds=msg.embeds,
            message_type=msg.type,
            flags=msg.flags,
            guild_id=self.world.guild_of(msg.channel_id),
            webhook_id=msg.webhook_id,
        )
        data["reactions"] = [
            {
                "emoji": {"id": None, "name": emoji},
                "count": len(users),
                "count_details": {"burst": 0, "normal": len(users)},
                "me": self.world.app_id in users,
                "me_burst": False,
                "burst_colors": [],
            }
            for emoji, users in msg.reactions.items()
            if users
        ]
        if msg.edited:
            data["edited_timestamp"] = p.iso_now()
        if msg.reference is not None:
            data["message_reference"] = {
                "type": 0,
                "message_id": msg.reference,
                "channel_id": msg.channel_id,
            }
            guild = self.world.guild_of(msg.channel_id)
            if guild is not None:
                data["message_reference"]["guild_id"] = guild
        return data

    def apply(
        self, msg: StoredMessage, body: dict[str, Any], files: list[UploadedFile], *, editing: bool
    ) -> None:
        """Apply a message create/edit body (content, embeds, components, attachments) to ``msg``."""
        for key in ("content", "embeds", "components"):
            if key in body and body[key] is not None:
                setattr(msg, key, body[key])
        if "flags" in body and body["flags"] is not None and not editing:
            msg.flags |= body["flags"] & 64
        uploaded = {}
        for index, f in enumerate(files):
            m = re.fullmatch(r"files\[(\d+)\]", f.field)
            key = int(m.group(1)) if m else index
            uploaded[key] = f
        if "attachments" in body and body["attachments"] is not None:
            keep = {a.id: a for a in msg.attachments}
            result = []
            for spec in body["attachments"]:
                ref = spec.get("id")
                if str(ref) in keep:
                    result.append(keep[str(ref)])
                elif ref is not None and int(ref) in uploaded:
                    result.append(self._store_upload(msg, uploaded[int(ref)], spec))
            msg.attachments = result
        elif uploaded:
            base = msg.attachments if editing else []
            msg.attachments = base + [self._store_upload(msg, f, {}) for f in uploaded.values()]

    def _store_upload(
        self, msg: StoredMessage, f: UploadedFile, spec: dict[str, Any]
    ) -> StoredAttachment:
        filename = spec.get("filename") or f.filename
        att = StoredAttachment(
            id=p.snowflake(),
            channel_id=msg.channel_id,
            filename=filename,
            content_type=guess_type(filename, f.data),
            data=f.data,
            description=spec.get("description"),
        )
        self.world.attachments[att.id] = att
        return att

    def verb(self, req: Req, msg: StoredMessage) -> web.Response:
        """GET, PATCH or DELETE one message (for the channel and the webhook routes alike)."""
        if req.call.method == "GET":
            return json_response(self.message_json(msg))
        if req.call.method == "DELETE":
            msg.deleted = True
            return web.Response(status=204)
        msg.flags &= ~128
        self.apply(msg, req.body or {}, req.call.files, editing=True)
        msg.edited = True
        return json_response(self.message_json(msg))

    # ------------------------------------------------------------------ routes

    async def _create(self, req: Req) -> web.StreamResponse:
        channel = req.match["channel"]
        if channel not in self.world.channels:
            return error(404, "Unknown Channel", 10003)
        if any(self.world.dm_channels.get(u) == channel for u in self.world.dms_closed):
            return error(403, "Cannot send messages to this user", 50007)
        body = req.body or {}
        refused = self._not_permitted(channel, body)
        if refused is not None:
            return refused
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            # Discord: with enforce_nonce, a nonce seen in the last few minutes returns that
            # message instead of creating another.
            for old in self.world.messages.values():
                if (
                    old.channel_id == channel
                    and old.nonce == str(nonce)
                    and (time.time() - old.created < NONCE_WINDOW)
                ):
                    return json_response(self.message_json(old))
        reference = body.get("message_reference")
        replied = self._replied_to(channel, reference) if reference else None
        if reference and replied is None and reference.get("fail_if_not_exists", True):
            return json_response(UNKNOWN_REPLY, 400)
        msg = StoredMessage(
            id=p.snowflake(),
            channel_id=channel,
            author=self.world.bot_user,
            type=19 if replied else 0,
            nonce=None if nonce is None else str(nonce),
            reference=replied.id if replied else None,
        )
        self.apply(msg, body, req.call.files, editing=False)
        self.world.messages[msg.id] = msg
        return json_response(self.message_json(msg))

    def _not_permitted(self, channel: str, body: dict[str, Any]) -> web.Response | None:
        """Create Message in a guild channel needs Send Messages and, "when creating a message
        as a reply to another message", Read Message History (Discord's 403/50013)."""
        if self.world.guild_of(channel) is None:
            return None
        perms = self.world.app_permissions(channel)
        needed = SEND_MESSAGES | (READ_MESSAGE_HISTORY if body.get("message_reference") else 0)
        if perms & needed != needed:
            return error(403, "Missing Permissions", 50013)
        return None

    def _replied_to(self, channel: str, reference: dict[str, Any]) -> StoredMessage | None:
        """The message a reply points at, if it is in this channel for everyone to see."""
        msg = self.world.messages.get(str(reference.get("message_id")))
        if msg is None or not self._in_channel(msg, channel):
            return None
        return msg

    @staticmethod
    def _in_channel(msg: StoredMessage, channel: str) -> bool:
        # An ephemeral message lives only in the member's client: the channel routes (the bot
        # token) never see it. A non-ephemeral interaction response is an ordinary channel
        # message authored by the bot user, so the bot token can fetch, edit and reply to it.
        return not msg.deleted and not msg.ephemeral and msg.channel_id == channel

    async def _message(self, req: Req) -> web.StreamResponse:
        msg = self.world.messages.get(req.match["message"])
        if msg is None or not self._in_channel(msg, req.match["channel"]):
            return error(404, "Unknown Message", 10008)
        if req.call.method == "PATCH" and msg.author["id"] != self.world.app_id:
            return error(403, "Cannot edit a message authored by another user", 50005)
        return self.verb(req, msg)

    async def _reaction(self, req: Req) -> web.StreamResponse:
        msg = self.world.messages.get(req.match["message"])
        if msg is None or not self._in_channel(msg, req.match["channel"]):
            return error(404, "Unknown Message", 10008)
        who = self.world.app_id if req.match["who"] == "@me" else req.match["who"]
        users = msg.reactions.setdefault(req.match["emoji"], set())
        if req.call.method == "PUT":
            users.add(who)
        else:
            users.discard(who)
        return web.Response(status=204)

"""The fake Discord's façade: ``FakeDiscord`` wires the parts together and is what tests drive.

It speaks the wire protocol discord.py 2.7 expects (REST, gateway, a signed-URL CDN on
127.0.0.1), models messages, attachments, interactions and reactions, records every call, and
injects faults. The parts, one module each:

- world.py: the state (application, guild, channels, members, roles, permissions, DM channels,
  messages) and the clock
- rest.py: REST plumbing (route table, parsing, auth, limits); the routes by resource in
  application.py (identity, commands), interactions.py (callback, modals, webhooks),
  messages.py (channel messages, reactions), guilds.py (members, roles) and dms.py (DM channels)
- gateway.py: the websocket and sessions; cdn.py: signed attachment URLs
- faults.py: injected failures; recording.py: calls, frames and bounded waits
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakediscord import payloads as p
from tests.fakediscord.application import Application
from tests.fakediscord.cdn import Cdn
from tests.fakediscord.dms import DirectMessages
from tests.fakediscord.faults import Fault, Faults
from tests.fakediscord.gateway import Gateway, Session
from tests.fakediscord.guilds import Guilds
from tests.fakediscord.interactions import INTERACTION_TTL, Interactions
from tests.fakediscord.messages import NONCE_WINDOW, Messages
from tests.fakediscord.models import (
    Call,
    ChannelRef,
    FakeInteraction,
    GatewayFrame,
    RoleRef,
    StoredAttachment,
    StoredMessage,
    UploadedFile,
    guess_type,
)
from tests.fakediscord.recording import Recorder
from tests.fakediscord.rest import RestApi
from tests.fakediscord.world import API_PREFIX, MiB, World

__all__ = [
    "API_PREFIX",
    "INTERACTION_TTL",
    "NONCE_WINDOW",
    "Call",
    "ChannelRef",
    "FakeDiscord",
    "FakeInteraction",
    "Fault",
    "GatewayFrame",
    "MiB",
    "RoleRef",
    "StoredAttachment",
    "StoredMessage",
    "UploadedFile",
]


class FakeDiscord(World, Recorder):
    """A fake Discord on 127.0.0.1: ``async with FakeDiscord() as fake:`` then point the bot at it."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token.Xq9.secret-value-0123456789",
        heartbeat_interval_ms: int = 5000,
        attachment_size_limit: int = 10 * MiB,
        max_request_bytes: int = 25 * MiB,
        cdn_ttl: float = 24 * 3600,
    ) -> None:
        # The façade is the world the parts share and the record tests read (calls, frames,
        # calls_to, received and the wait_* helpers come from Recorder).
        World.__init__(
            self,
            token=token,
            attachment_size_limit=attachment_size_limit,
            max_request_bytes=max_request_bytes,
            cdn_ttl=cdn_ttl,
        )
        Recorder.__init__(self)
        world: World = self
        recorder: Recorder = self
        self._faults = Faults()
        self.faults: list[Fault] = self._faults.pending
        self.cdn = Cdn(world, recorder)
        self.application = Application(world)
        self.guilds = Guilds(world)
        self.messages_api = Messages(world, self.cdn)
        self.interactions_api = Interactions(world, self.messages_api)
        self.dms = DirectMessages(world)
        self.gateway = Gateway(
            world,
            recorder,
            self.guilds.guild_create,
            heartbeat_interval_ms=heartbeat_interval_ms,
        )
        self.rest = RestApi(
            world,
            recorder,
            self._faults,
            [
                *self.application.routes(),
                *self.gateway.routes(),
                *self.interactions_api.routes(),
                *self.messages_api.routes(),
                *self.guilds.routes(),
                *self.dms.routes(),
            ],
        )
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, port: int = 0) -> FakeDiscord:
        """Listen on 127.0.0.1 (a free port unless given)."""
        app = web.Application(client_max_size=200 * MiB)
        self.gateway.add_routes(app)
        self.cdn.add_routes(app)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.rest.handle)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Close every gateway connection and stop listening."""
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def env(self) -> dict[str, str]:
        """Environment variables that point a bot at this fake."""
        return {
            "DISCORD_TOKEN": self.token,
            "DISCORD_API_BASE": self.api_base,
            "DISCORD_GATEWAY_URL": self.gateway_url,
        }

    # ------------------------------------------------------------------ faults

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float = 0.3,
        is_global: bool = False,
        code: int = 0,
        message: str = "",
        with_files: bool = False,
        after: bool = False,
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` (429 carries Via + retry_after).

        ``path_regex`` must match the whole path (relative to the API base); ``with_files`` limits
        the fault to requests that upload files; ``after`` carries the request out first and
        then answers with the fault (the reply was lost).
        """
        fault = Fault(
            method.upper(),
            re.compile(path_regex),
            status,
            times,
            retry_after,
            is_global,
            code,
            message,
            with_files,
            after,
        )
        return self._faults.add(fault)

    def rate_limit(
        self, method: str, path_regex: str, *, retry_after: float = 0.3, times: int = 1
    ) -> Fault:
        """A per-route 429 the client should wait out and retry."""
        return self.fail(method, path_regex, 429, retry_after=retry_after, times=times)

    def rate_limit_global(self, *, retry_after: float = 0.3, times: int = 1) -> Fault:
        """A global 429 on the next request of any route."""
        return self.fail(".*", ".*", 429, retry_after=retry_after, times=times, is_global=True)

    def delay(self, method: str, path_regex: str, seconds: float, *, times: int = 1) -> Fault:
        """Answer the next ``times`` matching requests normally, but ``seconds`` late (a slow
        route on Discord's side)."""
        fault = Fault(method.upper(), re.compile(path_regex), 0, times, delay=seconds)
        return self._faults.add(fault)

    def expire_interaction(self, token: str) -> None:
        """Make an interaction token expired, as if its 15 minutes had passed."""
        self.interactions[token].expired = True

    # ------------------------------------------------------------------ the gateway

    @property
    def current(self) -> Session | None:
        """The gateway session dispatches go to (None before the first IDENTIFY)."""
        return self.gateway.current

    @property
    def connections(self) -> int:
        """How many gateway connections were opened so far."""
        return self.gateway.connections

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH to the current session (kept for replay if the connection is down)."""
        await self.gateway.dispatch(event, data)

    async def drop_gateway(self) -> None:
        """Cut the current gateway connection without a close frame (a network drop)."""
        await self.gateway.drop()

    async def close_gateway(self, code: int = 4000) -> None:
        """Close the current gateway connection with a close code."""
        await self.gateway.close(code)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT; the client should come back with RESUME."""
        await self.gateway.send_op(7, None)

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION."""
        await self.gateway.send_op(9, resumable)

    # ------------------------------------------------------------------ user actions

    async def give_role(
        self, user: dict[str, Any], name: str, *, announce: bool = True, permissions: int = 0
    ) -> int:
        """Give the member a role (created, and announced with GUILD_ROLE_CREATE, if new).

        Like real Discord, every role reaches the bot: GUILD_CREATE lists the guild's roles, and a
        role made while a session is open is sent in GUILD_ROLE_CREATE, so discord.py's public
        ``Member.roles`` has it. ``announce=False`` is an opt-in fault: the role id appears only
        in the member's payloads, never in the guild's role list (a session that missed it).
        A new role carries ``permissions`` (bits, e.g. ``world.MANAGE_MESSAGES``).
        """
        role_id, created = self.guilds.give_role(
            user, name, announce=announce, permissions=permissions
        )
        if created and self.current is not None:
            role = {"guild_id": self.guild_id, "role": self.roles[role_id]}
            await self.dispatch("GUILD_ROLE_CREATE", role)
        return int(role_id)

    def upload_attachment(
        self,
        filename: str,
        data: bytes,
        *,
        content_type: str | None = None,
        channel_id: str | None = None,
    ) -> StoredAttachment:
        """Put a file on the CDN (what a Discord client does before a slash command)."""
        att = StoredAttachment(
            id=p.snowflake(),
            channel_id=channel_id or self.channel_id,
            filename=filename,
            content_type=content_type or guess_type(filename, data),
            data=data,
        )
        self.attachments[att.id] = att
        return att

    def set_command_permissions(self, command: str, overwrites: list[dict[str, Any]]) -> None:
        """Set the guild's permissions for a command (``""``: the whole application)."""
        self.application.set_command_permissions(command, overwrites)

    def add_channel(self, name: str) -> str:
        """Another text channel in the guild (call before the bot connects: GUILD_CREATE lists
        the channels); returns its id."""
        channel_id = p.snowflake()
        self.channels[channel_id] = p.text_channel(channel_id, self.guild_id, name)
        return channel_id

    def _options(self, options: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Option values and ``resolved`` as Discord sends them: a StoredAttachment is an
        attachment, a user object (a dict with ``username``) a user with their member, a
        ``ChannelRef`` a channel and a ``RoleRef`` a role; anything else a plain value."""
        opts: list[dict[str, Any]] = []
        resolved: dict[str, Any] = {}
        for key, value in options.items():
            if isinstance(value, StoredAttachment):
                opts.append(p.option(key, value.id, 11))
                resolved.setdefault("attachments", {})[value.id] = self.attachment_json(value)
            elif isinstance(value, dict) and "username" in value:
                opts.append(p.option(key, value["id"], 6))
                resolved.setdefault("users", {})[value["id"]] = value
                member = p.member(
                    value,
                    str(self.member_permissions(value["id"])),
                    roles=self.member_roles.get(value["id"], []),
                )
                del member["user"]
                resolved.setdefault("members", {})[value["id"]] = member
            elif isinstance(value, ChannelRef):
                opts.append(p.option(key, value.id, 7))
                channel = {**self.channels[value.id], "permissions": p.ALL_PERMISSIONS}
                resolved.setdefault("channels", {})[value.id] = channel
            elif isinstance(value, RoleRef):
                opts.append(p.option(key, value.id, 8))
                resolved.setdefault("roles", {})[value.id] = self.roles[value.id]
            else:
                opts.append(p.option(key, value))
        return opts, resolved

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: dict[str, Any] | None = None,
        channel_id: str | None = None,
        dm: bool = False,
    ) -> FakeInteraction:
        """Run ``/name`` as a member (``"group sub command"`` for a subcommand), in the guild's
        channel, another channel, or (``dm``) the member's DM with the bot. Option values: see
        ``_options``."""
        user = user or self.alice
        channel_id = self.dm_channel(user) if dm else (channel_id or self.channel_id)
        root, *path = name.split()
        opts, resolved = self._options(options or {})
        for depth, part in enumerate(reversed(path)):
            # The innermost name is the subcommand (type 1), the one around it its group (2).
            opts = [{"name": part, "type": 1 if depth == 0 else 2, "options": opts}]
        command = self.application.find_command(root)
        data: dict[str, Any] = {
            "id": command["id"] if command else p.snowflake(),
            "name": root,
            "type": 1,
            "options": opts,
        }
        if resolved:
            data["resolved"] = resolved
        if command and command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return await self._interact(2, data, user, channel_id)

    async def message_command(
        self, name: str, message_id: str, *, user: dict[str, Any] | None = None
    ) -> FakeInteraction:
        """Run the message command ``name`` (Apps → name) on a message: the target arrives
        resolved in full, attachments included, as Discord sends a context-menu target."""
        msg = self.messages[message_id]
        command = self.application.find_command(name)
        data: dict[str, Any] = {
            "id": command["id"] if command else p.snowflake(),
            "name": name,
            "type": 3,
            "target_id": msg.id,
            "resolved": {"messages": {msg.id: self.message_json(msg)}},
        }
        return await self._interact(2, data, user or self.alice, msg.channel_id)

    async def click(
        self, message_id: str, custom_id: str, *, user: dict[str, Any] | None = None
    ) -> FakeInteraction:
        """Click the button ``custom_id`` on a message the fake holds."""
        msg = self.messages[message_id]
        if custom_id not in msg.custom_ids():
            raise AssertionError(f"message {message_id} has no component {custom_id!r}")
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(
            3, data, user or self.alice, msg.channel_id, message=self.message_json(msg)
        )

    async def select(
        self,
        message_id: str,
        custom_id: str,
        values: list[str],
        *,
        user: dict[str, Any] | None = None,
    ) -> FakeInteraction:
        """Pick ``values`` in the string select ``custom_id`` on a message (component type 3)."""
        msg = self.messages[message_id]
        menu = msg.component(custom_id)
        if menu is None or menu.get("type") != 3:
            raise AssertionError(f"message {message_id} has no select {custom_id!r}")
        offered = {o["value"] for o in menu.get("options", [])}
        if not set(values) <= offered:
            raise AssertionError(f"{values} are not among the select's options {sorted(offered)}")
        data = {"custom_id": custom_id, "component_type": 3, "values": values}
        return await self._interact(
            3, data, user or self.alice, msg.channel_id, message=self.message_json(msg)
        )

    async def submit_modal(
        self,
        opened_by: FakeInteraction,
        values: dict[str, str],
        *,
        user: dict[str, Any] | None = None,
    ) -> FakeInteraction:
        """Submit the modal ``opened_by``'s response opened, with text ``values`` by input
        custom_id (unset inputs keep their pre-filled value); a modal opened from a component
        carries that component's message, as Discord sends it."""
        modal = opened_by.modal
        if modal is None:
            raise AssertionError("that interaction did not open a modal")
        rows = []
        for row in modal.get("components", []):
            inputs = row.get("components", [row.get("component")] if "component" in row else [])
            for field in inputs:
                if field is None or field.get("type") != 4:
                    continue
                value = values.get(field["custom_id"], field.get("value") or "")
                if field.get("required", True) and not value:
                    raise AssertionError(f"the modal's {field['custom_id']!r} is required")
                rows.append(
                    {
                        "type": 1,
                        "components": [
                            {"type": 4, "custom_id": field["custom_id"], "value": value}
                        ],
                    }
                )
        unknown = set(values) - {r["components"][0]["custom_id"] for r in rows}
        if unknown:
            raise AssertionError(f"the modal has no inputs {sorted(unknown)}")
        data = {"custom_id": modal["custom_id"], "components": rows}
        message = None
        if opened_by.message_id is not None and opened_by.message_id in self.messages:
            message = self.message_json(self.messages[opened_by.message_id])
        who = user or next(u for u in self.members() if u["id"] == opened_by.user_id)
        return await self._interact(5, data, who, opened_by.channel_id, message=message)

    async def react(
        self, message_id: str, emoji: str, *, user: dict[str, Any] | None = None
    ) -> None:
        """Add a reaction as a member and dispatch MESSAGE_REACTION_ADD (in a DM: no guild)."""
        user = user or self.alice
        msg = self.messages[message_id]
        msg.reactions.setdefault(emoji, set()).add(user["id"])
        await self.dispatch(
            "MESSAGE_REACTION_ADD",
            p.reaction_add(
                user_data=user,
                channel_id=msg.channel_id,
                message_id=msg.id,
                guild_id=self.guild_of(msg.channel_id),
                emoji=emoji,
                message_author_id=msg.author["id"],
                roles=self.member_roles.get(user["id"], []),
            ),
        )

    async def post_message(
        self,
        content: str,
        *,
        attachments: list[StoredAttachment] | None = None,
        embeds: list[dict[str, Any]] | None = None,
        user: dict[str, Any] | None = None,
        channel_id: str | None = None,
    ) -> StoredMessage:
        """A member posts a message (MESSAGE_CREATE)."""
        msg = StoredMessage(
            id=p.snowflake(),
            channel_id=channel_id or self.channel_id,
            author=user or self.alice,
            content=content,
            attachments=list(attachments or []),
            embeds=list(embeds or []),
        )
        self.messages[msg.id] = msg
        data = self.message_json(msg)
        if self.guild_of(msg.channel_id) is not None:
            roles = self.member_roles.get(msg.author["id"], [])
            member = p.member(msg.author, roles=roles)
            data["member"] = {k: v for k, v in member.items() if k != "user"}
        await self.dispatch("MESSAGE_CREATE", data)
        return msg

    async def _interact(
        self,
        kind: int,
        data: dict[str, Any],
        user: dict[str, Any],
        channel_id: str,
        message: dict[str, Any] | None = None,
    ) -> FakeInteraction:
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        # Created `gateway_lag` seconds ago: its id carries that time, as Discord's does (by
        # Discord's clock, `clock_skew` behind the host's).
        interaction_id = p.snowflake(time.time() - self.gateway_lag - self.clock_skew)
        if self.guild_of(channel_id) is None:
            payload = p.dm_interaction_base(
                interaction_type=kind,
                token=token,
                app_id=self.app_id,
                channel=self.channels[channel_id],
                user_data=user,
                attachment_size_limit=self.attachment_size_limit,
            )
        else:
            payload = p.interaction_base(
                interaction_type=kind,
                token=token,
                app_id=self.app_id,
                guild_id=self.guild_of(channel_id),
                channel=self.channels[channel_id],
                user_data=user,
                attachment_size_limit=self.attachment_size_limit,
                roles=self.member_roles.get(user["id"], []),
                permissions=str(self.member_permissions(user["id"])),
                app_permissions=str(self.app_permissions(channel_id)),
                interaction_id=interaction_id,
            )
        payload["id"] = interaction_id
        if not self.send_app_permissions:
            del payload["app_permissions"]
        payload["data"] = data
        if message is not None:
            payload["message"] = message
        inter = FakeInteraction(
            id=payload["id"],
            token=token,
            type=kind,
            channel_id=channel_id,
            user_id=user["id"],
            created=self.now() - self.gateway_lag,
            message_id=message["id"] if message else None,
            expired=self.expire_on_arrival,
        )
        self.interactions[token] = inter
        await self.dispatch("INTERACTION_CREATE", payload)
        return inter

    # ------------------------------------------------------------------ inspection and waiting

    def channel_messages(self, channel_id: str | None = None) -> list[StoredMessage]:
        """Messages in a channel, oldest first (deleted ones left out)."""
        cid = channel_id or self.channel_id
        return [m for m in self.messages.values() if m.channel_id == cid and not m.deleted]

    def original(self, interaction: FakeInteraction) -> StoredMessage | None:
        """The original response message of an interaction, if any."""
        return self.interactions_api.original(interaction)

    async def wait_for_message(
        self,
        predicate: Callable[[StoredMessage], bool] = lambda m: True,
        *,
        after: set[str] | None = None,
        within: float = 10.0,
    ) -> StoredMessage:
        """A message not in ``after`` (ids seen before) that matches ``predicate``."""
        seen = after or set()
        return await self.wait_for_first(
            lambda: (
                m
                for m in self.messages.values()
                if m.id not in seen and not m.loading and predicate(m)
            ),
            within,
            "a matching message",
        )

    # ------------------------------------------------------------------ JSON views

    def sign(self, path: str, expires: float) -> str:
        """The ``ex``/``is``/``hm`` query of a signed CDN URL for ``path``."""
        return self.cdn.sign(path, expires)

    def attachment_json(self, att: StoredAttachment) -> dict[str, Any]:
        """An attachment object with freshly signed URLs on the fake CDN."""
        return self.cdn.attachment_json(att)

    def message_json(self, msg: StoredMessage) -> dict[str, Any]:
        """A message object as Discord sends it."""
        return self.messages_api.message_json(msg)

"""The fake Discord: REST routes, the gateway and a signed-URL CDN on 127.0.0.1 (aiohttp.web).

It speaks the wire protocol discord.py 2.7 expects (see ../shared/reference/discord-protocol.md, Part B),
models messages, attachments, interactions and reactions, records every call, and injects faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakediscord import payloads as p

API_PREFIX = "/api/v10"
INTERACTION_TTL = 15 * 60  # seconds an interaction token stays valid (Discord's 15 minutes)
MiB = 1024 * 1024
NONCE_WINDOW = 300.0  # seconds a Create Message nonce is remembered ("a few minutes")

Handler = Callable[["Req"], Awaitable[web.StreamResponse]]


@dataclass
class UploadedFile:
    """One file part of a multipart request (``files[n]``)."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One recorded REST or CDN request and the status the fake answered."""

    method: str
    path: str  # relative to the API base for REST ("/users/@me"), absolute for the CDN
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    files: list[UploadedFile]
    status: int = 0
    at: float = 0.0

    @property
    def route(self) -> str:
        """``METHOD path`` for quick matching."""
        return f"{self.method} {self.path}"


@dataclass
class GatewayFrame:
    """One gateway frame, in either direction, with the connection it travelled on."""

    direction: str  # "in" (from the bot) or "out" (to the bot)
    conn: int
    op: int
    t: str | None
    d: Any
    s: int | None


@dataclass
class Fault:
    """A failure the fake returns instead of the real answer for matching requests."""

    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    retry_after: float = 0.0
    is_global: bool = False
    code: int = 0
    message: str = ""
    with_files: bool = False  # only requests that upload files (e.g. a result, not a progress edit)
    after: bool = False  # do the request, then answer with the fault (a reply lost on the way)


@dataclass
class StoredAttachment:
    """A file the fake holds on its CDN."""

    id: str
    channel_id: str
    filename: str
    content_type: str
    data: bytes
    description: str | None = None


@dataclass
class StoredMessage:
    """A message in a channel, as the fake holds it."""

    id: str
    channel_id: str
    author: dict[str, Any]
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    webhook_id: str | None = None
    interaction_id: str | None = None
    reactions: dict[str, set[str]] = field(default_factory=dict)
    edited: bool = False
    deleted: bool = False
    nonce: str | None = None
    created: float = field(default_factory=time.time)

    def custom_ids(self) -> list[str]:
        """Every component custom_id in the message (rows and their children)."""
        found: list[str] = []

        def walk(items: list[dict[str, Any]]) -> None:
            for item in items:
                if "custom_id" in item:
                    found.append(item["custom_id"])
                walk(item.get("components", []))

        walk(self.components)
        return found

    @property
    def loading(self) -> bool:
        """True while a deferred response still shows "thinking"."""
        return bool(self.flags & 128)


@dataclass
class FakeInteraction:
    """An interaction the fake sent, with the state of its response."""

    id: str
    token: str
    type: int
    channel_id: str
    user_id: str
    created: float
    message_id: str | None = None  # the clicked message, for components
    response_type: int | None = None
    original_id: str | None = None
    expired: bool = False


@dataclass
class _Session:
    session_id: str
    token: str
    seq: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    conn: int = 0


@dataclass
class Req:
    """A parsed REST request handed to a route handler."""

    request: web.Request
    match: dict[str, str]
    call: Call

    @property
    def body(self) -> Any:
        """The JSON body, or ``payload_json`` of a multipart body."""
        return self.call.json


class FakeDiscord:
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
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.attachment_size_limit = attachment_size_limit
        self.max_request_bytes = max_request_bytes
        self.cdn_ttl = cdn_ttl
        self.time_offset = 0.0  # added to the clock by advance_time()
        self.ack_heartbeats = True
        self.expire_on_arrival = False  # new interactions start expired (a bot far too slow)

        self.app_id = p.snowflake()
        self.bot_user = p.user(self.app_id, "remixbot", bot=True)
        self.owner = p.user(p.snowflake(), "owner")
        self.alice = p.user(p.snowflake(), "alice")
        self.bob = p.user(p.snowflake(), "bob")
        self.guild_id = p.snowflake()
        self.channel_id = p.snowflake()
        self.channels = {self.channel_id: p.text_channel(self.channel_id, self.guild_id)}
        self.send_app_permissions = True  # False: interactions omit app_permissions (allowed)
        self.roles: dict[str, dict[str, Any]] = {}  # guild roles besides @everyone, by id
        self.member_roles: dict[str, list[str]] = {}  # user id -> role ids

        self.calls: list[Call] = []
        self.frames: list[GatewayFrame] = []
        self.faults: list[Fault] = []
        self.commands: dict[str | None, list[dict[str, Any]]] = {}  # guild id (None = global)
        self.messages: dict[str, StoredMessage] = {}
        self.attachments: dict[str, StoredAttachment] = {}
        self.interactions: dict[str, FakeInteraction] = {}  # by token
        self.sessions: dict[str, _Session] = {}
        self.current: _Session | None = None
        self.connections = 0

        self._secret = secrets.token_bytes(16)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port = 0
        self._routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        self._build_routes()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, port: int = 0) -> FakeDiscord:
        """Listen on 127.0.0.1 (a free port unless given)."""
        app = web.Application(client_max_size=200 * MiB)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{channel}/{att}/{filename}", self._cdn)
        app.router.add_get("/media/attachments/{channel}/{att}/{filename}", self._cdn)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
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
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1001), 1)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """The value for DISCORD_API_BASE."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """The value for DISCORD_GATEWAY_URL."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    def env(self) -> dict[str, str]:
        """Environment variables that point a bot at this fake."""
        return {
            "DISCORD_TOKEN": self.token,
            "DISCORD_API_BASE": self.api_base,
            "DISCORD_GATEWAY_URL": self.gateway_url,
        }

    def now(self) -> float:
        """The fake's clock: wall time plus :meth:`advance_time` offsets."""
        return time.time() + self.time_offset

    def advance_time(self, seconds: float) -> None:
        """Move the fake's clock forward (expires CDN URLs and interaction tokens)."""
        self.time_offset += seconds

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
        self.faults.append(fault)
        return fault

    def rate_limit(
        self, method: str, path_regex: str, *, retry_after: float = 0.3, times: int = 1
    ) -> Fault:
        """A per-route 429 the client should wait out and retry."""
        return self.fail(method, path_regex, 429, retry_after=retry_after, times=times)

    def rate_limit_global(self, *, retry_after: float = 0.3, times: int = 1) -> Fault:
        """A global 429 on the next request of any route."""
        return self.fail(".*", ".*", 429, retry_after=retry_after, times=times, is_global=True)

    def expire_interaction(self, token: str) -> None:
        """Make an interaction token expired, as if its 15 minutes had passed."""
        self.interactions[token].expired = True

    async def drop_gateway(self) -> None:
        """Cut the current gateway connection without a close frame (a network drop)."""
        session = self.current
        if session is None or session.ws is None:
            raise RuntimeError("no gateway connection to drop")
        ws, session.ws = session.ws, None
        transport = ws._req.transport if ws._req is not None else None
        if transport is not None:
            transport.abort()
        self._notify()

    async def close_gateway(self, code: int = 4000) -> None:
        """Close the current gateway connection with a close code."""
        session = self.current
        if session is None or session.ws is None:
            raise RuntimeError("no gateway connection to close")
        ws, session.ws = session.ws, None
        await ws.close(code=code)
        self._notify()

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT; the client should come back with RESUME."""
        await self._send_op(7, None)

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION."""
        await self._send_op(9, resumable)

    # ------------------------------------------------------------------ user actions

    async def give_role(self, user: dict[str, Any], name: str, *, announce: bool = True) -> int:
        """Give the member a role (created, and announced with GUILD_ROLE_CREATE, if new).

        ``announce=False``: the role id only appears in the member's payloads, never in the
        guild's role list (a session may not know every role).
        """
        role_id = next((r for r, data in self.roles.items() if data["name"] == name), None)
        if role_id is None and not announce:
            role_id = p.snowflake()
        elif role_id is None:
            role_id = p.snowflake()
            self.roles[role_id] = p.role(role_id, name, position=len(self.roles) + 1)
            if self.current is not None:
                await self.dispatch(
                    "GUILD_ROLE_CREATE", {"guild_id": self.guild_id, "role": self.roles[role_id]}
                )
        self.member_roles.setdefault(user["id"], []).append(role_id)
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
            content_type=content_type or _guess_type(filename, data),
            data=data,
        )
        self.attachments[att.id] = att
        return att

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: dict[str, Any] | None = None,
        channel_id: str | None = None,
    ) -> FakeInteraction:
        """Run ``/name`` as a member; an option whose value is a StoredAttachment is an attachment."""
        user = user or self.alice
        channel_id = channel_id or self.channel_id
        opts: list[dict[str, Any]] = []
        resolved: dict[str, Any] = {}
        for key, value in (options or {}).items():
            if isinstance(value, StoredAttachment):
                opts.append(p.option(key, value.id, 11))
                resolved.setdefault("attachments", {})[value.id] = self.attachment_json(value)
            else:
                opts.append(p.option(key, value))
        command = self._find_command(name)
        data: dict[str, Any] = {
            "id": command["id"] if command else p.snowflake(),
            "name": name,
            "type": 1,
            "options": opts,
        }
        if resolved:
            data["resolved"] = resolved
        if command and command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return await self._interact(2, data, user, channel_id)

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

    async def react(
        self, message_id: str, emoji: str, *, user: dict[str, Any] | None = None
    ) -> None:
        """Add a reaction as a member and dispatch MESSAGE_REACTION_ADD."""
        user = user or self.alice
        msg = self.messages[message_id]
        msg.reactions.setdefault(emoji, set()).add(user["id"])
        await self.dispatch(
            "MESSAGE_REACTION_ADD",
            p.reaction_add(
                user_data=user,
                channel_id=msg.channel_id,
                message_id=msg.id,
                guild_id=self.guild_id,
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
        )
        self.messages[msg.id] = msg
        data = self.message_json(msg)
        roles = self.member_roles.get(msg.author["id"], [])
        data["member"] = {k: v for k, v in p.member(msg.author, roles=roles).items() if k != "user"}
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
        payload = p.interaction_base(
            interaction_type=kind,
            token=token,
            app_id=self.app_id,
            guild_id=self.guild_id,
            channel=self.channels[channel_id],
            user_data=user,
            attachment_size_limit=self.attachment_size_limit,
            roles=self.member_roles.get(user["id"], []),
        )
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
            created=self.now(),
            message_id=message["id"] if message else None,
            expired=self.expire_on_arrival,
        )
        self.interactions[token] = inter
        await self.dispatch("INTERACTION_CREATE", payload)
        return inter

    def _find_command(self, name: str) -> dict[str, Any] | None:
        for guild in (self.guild_id, None):
            for cmd in self.commands.get(guild, []):
                if cmd["name"] == name:
                    return cmd
        return None

    # ------------------------------------------------------------------ inspection and waiting

    def channel_messages(self, channel_id: str | None = None) -> list[StoredMessage]:
        """Messages in a channel, oldest first (deleted ones left out)."""
        cid = channel_id or self.channel_id
        return [m for m in self.messages.values() if m.channel_id == cid and not m.deleted]

    def original(self, interaction: FakeInteraction) -> StoredMessage | None:
        """The original response message of an interaction, if any."""
        return self.messages.get(interaction.original_id or "")

    def calls_to(self, method: str, path_regex: str) -> list[Call]:
        """Recorded calls whose method and path match."""
        rx = re.compile(path_regex)
        return [c for c in self.calls if c.method == method.upper() and rx.fullmatch(c.path)]

    def received(self, op: int) -> list[GatewayFrame]:
        """Frames the bot sent with this opcode."""
        return [f for f in self.frames if f.direction == "in" and f.op == op]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(
        self, check: Callable[[], Any], within: float = 10.0, what: str = ""
    ) -> Any:
        """Wait (bounded) until ``check()`` returns something truthy, and return it."""
        deadline = time.monotonic() + within
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {within:g}s waiting for {what or check}")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.5))

    async def wait_for_call(
        self,
        predicate: Callable[[Call], bool],
        *,
        after: int = 0,
        within: float = 10.0,
        what: str = "a matching call",
    ) -> Call:
        """The first recorded call at index >= ``after`` matching ``predicate`` (answered)."""

        def check() -> Call | None:
            for call in self.calls[after:]:
                if call.status and predicate(call):
                    return call
            return None

        return await self.wait_until(check, within, what)

    async def wait_for_message(
        self,
        predicate: Callable[[StoredMessage], bool] = lambda m: True,
        *,
        after: set[str] | None = None,
        within: float = 10.0,
    ) -> StoredMessage:
        """A message not in ``after`` (ids seen before) that matches ``predicate``."""
        seen = after or set()

        def check() -> StoredMessage | None:
            for msg in self.messages.values():
                if msg.id not in seen and not msg.loading and predicate(msg):
                    return msg
            return None

        return await self.wait_until(check, within, "a matching message")

    async def wait_identified(self, *, after: int = 0, within: float = 15.0) -> GatewayFrame:
        """The first IDENTIFY at frame index >= ``after`` once READY and GUILD_CREATE are sent."""

        def check() -> GatewayFrame | None:
            frames = self.frames[after:]
            for i, f in enumerate(frames):
                if f.direction == "in" and f.op == 2:
                    for g in frames[i:]:
                        if g.direction == "out" and g.t == "GUILD_CREATE" and g.conn == f.conn:
                            return f
            return None

        return await self.wait_until(check, within, "IDENTIFY and GUILD_CREATE")

    # ------------------------------------------------------------------ JSON views

    def sign(self, path: str, expires: float) -> str:
        """The ``ex``/``is``/``hm`` query of a signed CDN URL for ``path``."""
        ex = format(int(expires), "x")
        issued = format(int(self.now()), "x")
        hm = hmac.new(self._secret, f"{path}|{ex}|{issued}".encode(), hashlib.sha256).hexdigest()
        return f"ex={ex}&is={issued}&hm={hm}"

    def attachment_json(self, att: StoredAttachment) -> dict[str, Any]:
        """An attachment object with freshly signed URLs on the fake CDN."""
        quoted = urllib.parse.quote(att.filename)
        path = f"/attachments/{att.channel_id}/{att.id}/{quoted}"
        query = self.sign(path, self.now() + self.cdn_ttl)
        data: dict[str, Any] = {
            "id": att.id,
            "filename": att.filename,
            "size": len(att.data),
            "content_type": att.content_type,
            "url": f"{self.base_url}{path}?{query}",
            "proxy_url": f"{self.base_url}/media{path}?{query}",
        }
        if att.description is not None:
            data["description"] = att.description
        size = _png_size(att.data)
        if size:
            data["width"], data["height"] = size
        return data

    def message_json(self, msg: StoredMessage) -> dict[str, Any]:
        """A message object as Discord sends it."""
        data = p.message(
            msg.id,
            msg.channel_id,
            msg.author,
            content=msg.content,
            attachments=[self.attachment_json(a) for a in msg.attachments],
            components=msg.components,
            embeds=msg.embeds,
            message_type=msg.type,
            flags=msg.flags,
            guild_id=self.guild_id,
            webhook_id=msg.webhook_id,
        )
        data["reactions"] = [
            {
                "emoji": {"id": None, "name": emoji},
                "count": len(users),
                "count_details": {"burst": 0, "normal": len(users)},
                "me": self.app_id in users,
                "me_burst": False,
                "burst_colors": [],
            }
            for emoji, users in msg.reactions.items()
            if users
        ]
        if msg.edited:
            data["edited_timestamp"] = p.iso_now()
        return data

    # ------------------------------------------------------------------ gateway

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH to the current session (kept for replay if the connection is down)."""
        session = self.current
        if session is None:
            raise RuntimeError("no bot has identified with the fake gateway")
        await self._dispatch_to(session, event, data)

    async def _dispatch_to(self, session: _Session, event: str, data: Any) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.frames.append(frame)
        if session.ws is not None and not session.ws.closed:
            await self._send(session.ws, session.conn, frame)

    async def _send_op(self, op: int, d: Any) -> None:
        session = self.current
        if session is None or session.ws is None:
            raise RuntimeError("no gateway connection")
        await self._send(session.ws, session.conn, {"op": op, "d": d, "s": None, "t": None})

    async def _send(self, ws: web.WebSocketResponse, conn: int, frame: dict[str, Any]) -> None:
        self.frames.append(
            GatewayFrame("out", conn, frame["op"], frame.get("t"), frame.get("d"), frame.get("s"))
        )
        self._notify()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(frame))

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        conn = self.connections
        self._sockets.add(ws)
        try:
            await self._send(
                ws,
                conn,
                {
                    "op": 10,
                    "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                    "s": None,
                    "t": None,
                },
            )
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op, d = frame.get("op"), frame.get("d")
                self.frames.append(GatewayFrame("in", conn, op, None, d, None))
                self._notify()
                if op == 1 and self.ack_heartbeats:
                    await self._send(ws, conn, {"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    await self._identify(ws, conn, d)
                elif op == 6:
                    await self._resume(ws, conn, d)
        finally:
            self._sockets.discard(ws)
            for session in self.sessions.values():
                if session.ws is ws:
                    session.ws = None
            self._notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, conn: int, d: dict[str, Any]) -> None:
        if d.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        session = _Session(session_id=secrets.token_hex(16), token=d["token"], ws=ws, conn=conn)
        self.sessions[session.session_id] = session
        self.current = session
        await self._dispatch_to(
            session,
            "READY",
            p.ready(
                self.bot_user, [self.guild_id], session.session_id, self.gateway_url, self.app_id
            ),
        )
        await self._dispatch_to(
            session,
            "GUILD_CREATE",
            p.guild_create(
                self.guild_id, list(self.channels.values()), roles=list(self.roles.values())
            ),
        )

    async def _resume(self, ws: web.WebSocketResponse, conn: int, d: dict[str, Any]) -> None:
        session = self.sessions.get(d.get("session_id", ""))
        if session is None or d.get("token") != session.token:
            await self._send(ws, conn, {"op": 9, "d": False, "s": None, "t": None})
            return
        session.ws, session.conn = ws, conn
        self.current = session
        last = int(d.get("seq") or 0)
        for frame in [f for f in session.frames if f["s"] > last]:
            await self._send(ws, conn, frame)
        await self._dispatch_to(session, "RESUMED", {})

    # ------------------------------------------------------------------ CDN

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix("/media")
        call = Call("GET", request.path, dict(request.query), dict(request.headers), None, [])
        call.at = time.time()
        self.calls.append(call)
        att = self.attachments.get(request.match_info["att"])
        q = request.query
        ok = att is not None and all(k in q for k in ("ex", "is", "hm"))
        if ok:
            expected = hmac.new(
                self._secret, f"{path}|{q['ex']}|{q['is']}".encode(), hashlib.sha256
            ).hexdigest()
            ok = hmac.compare_digest(expected, q["hm"]) and int(q["ex"], 16) > self.now()
        if not ok or att is None:
            call.status = 404
            self._notify()
            return web.Response(status=404, text="This content is no longer available.")
        call.status = 200
        self._notify()
        return web.Response(body=att.data, headers={"Content-Type": att.content_type})

    # ------------------------------------------------------------------ REST plumbing

    def _build_routes(self) -> None:
        snow = r"(?P<{}>\d+)"
        tok = r"(?P<token>[^/]+)"
        app = snow.format("app")
        chan = snow.format("channel")
        mid = r"(?P<message>\d+|@original)"
        r = self._routes
        r.append(("GET", re.compile(r"/users/@me"), self._users_me, "bot"))
        r.append(("GET", re.compile(r"/oauth2/applications/@me"), self._app_me, "bot"))
        r.append(("GET", re.compile(r"/gateway/bot"), self._gateway_bot, "bot"))
        r.append(("GET", re.compile(r"/gateway"), self._gateway_info, "none"))
        for guild in ("", "/guilds/" + snow.format("guild")):
            path = re.compile(rf"/applications/{app}{guild}/commands")
            r.append(("PUT", path, self._put_commands, "bot"))
            r.append(("GET", path, self._get_commands, "bot"))
        r.append(
            (
                "POST",
                re.compile(rf"/interactions/{snow.format('iid')}/{tok}/callback"),
                self._callback,
                "none",
            )
        )
        r.append(("POST", re.compile(rf"/webhooks/{app}/{tok}"), self._followup, "none"))
        hook_msg = re.compile(rf"/webhooks/{app}/{tok}/messages/{mid}")
        for method in ("GET", "PATCH", "DELETE"):
            r.append((method, hook_msg, self._webhook_message, "none"))
        r.append(("POST", re.compile(rf"/channels/{chan}/messages"), self._create_message, "bot"))
        chan_msg = re.compile(rf"/channels/{chan}/messages/{snow.format('message')}")
        for method in ("GET", "PATCH", "DELETE"):
            r.append((method, chan_msg, self._channel_message, "bot"))
        reaction = re.compile(
            rf"/channels/{chan}/messages/{snow.format('message')}/reactions/(?P<emoji>[^/]+)/(?P<who>@me|\d+)"
        )
        r.append(("PUT", reaction, self._reaction, "bot"))
        member = re.compile(rf"/guilds/{snow.format('guild')}/members/{snow.format('user')}")
        r.append(("GET", member, self._guild_member, "bot"))
        r.append(("DELETE", reaction, self._reaction, "bot"))

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        raw_path = request.raw_path.split("?", 1)[0].removeprefix(API_PREFIX)
        call = Call(request.method, path, dict(request.query), dict(request.headers), None, [])
        call.at = time.time()
        self.calls.append(call)
        try:
            await self._read_body(request, call)
            response = await self._route(request, call, path, raw_path)
        except Exception as exc:  # report the fake's own bugs as a 500 the test will see
            response = _json({"message": f"fake discord error: {exc!r}", "code": 0}, 500)
        call.status = response.status
        self._notify()
        return response

    async def _route(
        self, request: web.Request, call: Call, path: str, raw_path: str
    ) -> web.StreamResponse:
        fault = self._take_fault(call.method, path, bool(call.files))
        if fault is not None and not fault.after:
            return _fault_response(fault)
        response = await self._handle(request, call, raw_path)
        return _fault_response(fault) if fault is not None else response

    async def _handle(self, request: web.Request, call: Call, raw_path: str) -> web.StreamResponse:
        for method, pattern, handler, auth in self._routes:
            m = pattern.fullmatch(raw_path)
            if m is None or method != call.method:
                continue
            if auth == "bot" and request.headers.get("Authorization") != f"Bot {self.token}":
                return _json({"message": "401: Unauthorized", "code": 0}, 401)
            too_big = self._too_large(call.files)
            if too_big:
                return _json({"message": "Request entity too large", "code": 40005}, 413)
            match = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
            return await handler(Req(request, match, call))
        return _json({"message": "404: Not Found", "code": 0}, 404)

    def _take_fault(self, method: str, path: str, has_files: bool = False) -> Fault | None:
        for fault in self.faults:
            if fault.times <= 0 or (fault.with_files and not has_files):
                continue
            if re.fullmatch(fault.method, method) and fault.pattern.fullmatch(path):
                fault.times -= 1
                return fault
        return None

    def _too_large(self, files: list[UploadedFile]) -> bool:
        total = sum(len(f.data) for f in files)
        return total > self.max_request_bytes or any(
            len(f.data) > self.attachment_size_limit for f in files
        )

    async def _read_body(self, request: web.Request, call: Call) -> None:
        ctype = request.content_type
        if ctype == "application/json":
            raw = await request.read()
            call.json = json.loads(raw) if raw else None
        elif ctype.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    call.json = json.loads(await part.text())
                elif part.name is not None:
                    data = await part.read(decode=False)
                    call.files.append(
                        UploadedFile(
                            part.name,
                            part.filename or "",
                            part.headers.get("Content-Type", ""),
                            bytes(data),
                        )
                    )

    # ------------------------------------------------------------------ REST routes

    async def _users_me(self, req: Req) -> web.StreamResponse:
        return _json(self.bot_user)

    async def _app_me(self, req: Req) -> web.StreamResponse:
        return _json(p.application(self.app_id, self.owner))

    async def _gateway_bot(self, req: Req) -> web.StreamResponse:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _gateway_info(self, req: Req) -> web.StreamResponse:
        return _json({"url": self.gateway_url})

    async def _put_commands(self, req: Req) -> web.StreamResponse:
        guild = req.match.get("guild")
        if req.match["app"] != self.app_id:
            return _json({"message": "Unknown Application", "code": 10002}, 404)
        old = {c["name"]: c for c in self.commands.get(guild, [])}
        stored = []
        for body in req.body or []:
            prev = old.get(body["name"])
            cmd = {
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                "options": [],
                "type": 1,
                **body,
                "id": prev["id"] if prev else p.snowflake(),
                "application_id": self.app_id,
                "version": p.snowflake(),
            }
            if guild:
                cmd["guild_id"] = guild
            stored.append(cmd)
        self.commands[guild] = stored
        return _json(stored)

    async def _get_commands(self, req: Req) -> web.StreamResponse:
        return _json(self.commands.get(req.match.get("guild"), []))

    def _live_interaction(self, token: str) -> FakeInteraction | None:
        inter = self.interactions.get(token)
        if inter is not None and self.now() > inter.created + INTERACTION_TTL:
            inter.expired = True
        return inter

    async def _callback(self, req: Req) -> web.StreamResponse:
        inter = self._live_interaction(req.match["token"])
        if inter is None or inter.id != req.match["iid"] or inter.expired:
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if inter.response_type is not None:
            return _json(
                {"message": "Interaction has already been acknowledged.", "code": 40060}, 400
            )
        body = req.body or {}
        kind = body.get("type")
        data = body.get("data") or {}
        inter.response_type = kind
        message: StoredMessage | None = None
        if kind in (4, 5):
            message = StoredMessage(
                id=p.snowflake(),
                channel_id=inter.channel_id,
                author=self.bot_user,
                type=20 if inter.type == 2 else 19,
                webhook_id=self.app_id,
                interaction_id=inter.id,
            )
            if kind == 5:
                message.flags = 128 | (data.get("flags", 0) & 64)
            else:
                self._apply(message, data, req.call.files, editing=False)
            self.messages[message.id] = message
            inter.original_id = message.id
        elif kind in (6, 7) and inter.message_id:
            inter.original_id = inter.message_id
            message = self.messages.get(inter.message_id)
            if kind == 7 and message is not None:
                self._apply(message, data, req.call.files, editing=True)
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
            reply["resource"]["message"] = self.message_json(message)
        return _json(reply)

    def _webhook_interaction(self, req: Req) -> tuple[FakeInteraction | None, web.Response | None]:
        inter = self._live_interaction(req.match["token"])
        if inter is None or req.match["app"] != self.app_id:
            return None, _json({"message": "Unknown Webhook", "code": 10015}, 404)
        if inter.expired:
            return None, _json({"message": "Invalid Webhook Token", "code": 50027}, 401)
        return inter, None

    async def _followup(self, req: Req) -> web.StreamResponse:
        inter, error = self._webhook_interaction(req)
        if inter is None:
            return error or _json({}, 500)
        body = req.body or {}
        original = self.original(inter)
        if original is not None and original.loading:
            # Discord turns the first followup after a type-5 defer into the "thinking" message.
            original.flags &= ~128
            self._apply(original, body, req.call.files, editing=True)
            return _json(self.message_json(original))
        msg = StoredMessage(
            id=p.snowflake(),
            channel_id=inter.channel_id,
            author=self.bot_user,
            type=20 if inter.type == 2 else 19,
            webhook_id=self.app_id,
            interaction_id=inter.id,
            flags=body.get("flags", 0) & 64,
        )
        self._apply(msg, body, req.call.files, editing=False)
        self.messages[msg.id] = msg
        return _json(self.message_json(msg))

    async def _webhook_message(self, req: Req) -> web.StreamResponse:
        inter, error = self._webhook_interaction(req)
        if inter is None:
            return error or _json({}, 500)
        mid = req.match["message"]
        if mid == "@original":
            mid = inter.original_id or ""
        msg = self.messages.get(mid)
        if msg is None or msg.deleted:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        return self._message_verb(req, msg)

    async def _create_message(self, req: Req) -> web.StreamResponse:
        channel = req.match["channel"]
        if channel not in self.channels:
            return _json({"message": "Unknown Channel", "code": 10003}, 404)
        body = req.body or {}
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            # Discord: with enforce_nonce, a nonce seen in the last few minutes returns that
            # message instead of creating another.
            for old in self.messages.values():
                if (
                    old.channel_id == channel
                    and old.nonce == str(nonce)
                    and (time.time() - old.created < NONCE_WINDOW)
                ):
                    return _json(self.message_json(old))
        msg = StoredMessage(
            id=p.snowflake(),
            channel_id=channel,
            author=self.bot_user,
            type=19 if body.get("message_reference") else 0,
            nonce=None if nonce is None else str(nonce),
        )
        self._apply(msg, body, req.call.files, editing=False)
        self.messages[msg.id] = msg
        return _json(self.message_json(msg))

    async def _channel_message(self, req: Req) -> web.StreamResponse:
        msg = self.messages.get(req.match["message"])
        if msg is None or msg.deleted or msg.channel_id != req.match["channel"]:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        if req.call.method == "PATCH" and msg.author["id"] != self.app_id:
            return _json(
                {"message": "Cannot edit a message authored by another user", "code": 50005}, 403
            )
        return self._message_verb(req, msg)

    def _message_verb(self, req: Req, msg: StoredMessage) -> web.Response:
        if req.call.method == "GET":
            return _json(self.message_json(msg))
        if req.call.method == "DELETE":
            msg.deleted = True
            return web.Response(status=204)
        msg.flags &= ~128
        self._apply(msg, req.body or {}, req.call.files, editing=True)
        msg.edited = True
        return _json(self.message_json(msg))

    async def _reaction(self, req: Req) -> web.StreamResponse:
        msg = self.messages.get(req.match["message"])
        if msg is None or msg.deleted:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        who = self.app_id if req.match["who"] == "@me" else req.match["who"]
        users = msg.reactions.setdefault(req.match["emoji"], set())
        if req.call.method == "PUT":
            users.add(who)
        else:
            users.discard(who)
        return web.Response(status=204)

    async def _guild_member(self, req: Req) -> web.StreamResponse:
        if req.match["guild"] != self.guild_id:
            return _json({"message": "Unknown Guild", "code": 10004}, 404)
        users = (self.owner, self.alice, self.bob)
        user = next((u for u in users if u["id"] == req.match["user"]), None)
        if user is None:
            return _json({"message": "Unknown Member", "code": 10007}, 404)
        return _json(p.member(user, roles=self.member_roles.get(user["id"], [])))

    def _apply(
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
            content_type=_guess_type(filename, f.data),
            data=f.data,
            description=spec.get("description"),
        )
        self.attachments[att.id] = att
        return att


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON reply with Content-Type exactly ``application/json`` (discord.py compares it whole)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _fault_response(fault: Fault) -> web.Response:
    if fault.status == 429:
        scope = "global" if fault.is_global else "user"
        headers = {"Via": "1.1 google", "X-RateLimit-Scope": scope, "Retry-After": "1"}
        if fault.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": fault.retry_after,
            "global": fault.is_global,
        }
        return _json(body, 429, headers)
    if fault.status == 413:
        return _json({"message": "Request entity too large", "code": fault.code or 40005}, 413)
    return _json(
        {"message": fault.message or f"{fault.status}: fault", "code": fault.code}, fault.status
    )


def _guess_type(filename: str, data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None

"""The fake gateway: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME with replay,
dispatches, and the ways a connection ends (drop, close code, RECONNECT, INVALID_SESSION).
Also the REST routes that tell a client where the gateway is.

Shards as Discord has them: an IDENTIFY with `shard: [id, count]` opens that shard's session,
whose READY and GUILD_CREATEs name only the guilds with `(guild_id >> 22) % count == id`, and an
event of a guild goes to its shard's session (to none while that shard has never identified).

Intents as Discord has them: an event that needs an intent the session did not ask for in its
IDENTIFY is not sent to it (a reaction needs `guild_reactions`, or `dm_reactions` in a DM; a
message `guild_messages` or `dm_messages`; role and channel events `guilds`). Events no intent
covers, like INTERACTION_CREATE, always go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakediscord import payloads as p
from tests.fakediscord.models import GatewayFrame
from tests.fakediscord.recording import Recorder
from tests.fakediscord.rest import Req, Route, json_response, routes
from tests.fakediscord.world import World

# Discord's intent bits (GUILDS, GUILD_MESSAGES, GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGES,
# DIRECT_MESSAGE_REACTIONS): the ones the events this fake dispatches need.
GUILDS, GUILD_MESSAGES, GUILD_REACTIONS, DM_MESSAGES, DM_REACTIONS = (
    1 << 0,
    1 << 9,
    1 << 10,
    1 << 12,
    1 << 13,
)


def needed_intent(event: str, in_guild: bool) -> int:
    """The intent bit Discord needs before it sends `event`; 0 for events always sent."""
    if event.startswith("MESSAGE_REACTION_"):
        return GUILD_REACTIONS if in_guild else DM_REACTIONS
    if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"):
        return GUILD_MESSAGES if in_guild else DM_MESSAGES
    if event.startswith(("GUILD_", "CHANNEL_", "THREAD_")):
        return GUILDS
    return 0


@dataclass
class Session:
    """One gateway session: its sequence and every dispatch sent, for RESUME to replay."""

    session_id: str
    token: str
    seq: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    conn: int = 0
    shard: tuple[int, int] | None = None  # (id, count) from IDENTIFY; None: every guild
    intents: int = 0  # from IDENTIFY

    def wants(self, event: str, in_guild: bool) -> bool:
        """True when the session asked for the intent the event needs (or it needs none)."""
        need = needed_intent(event, in_guild)
        return need == 0 or bool(self.intents & need)

    def covers(self, guild_id: str) -> bool:
        """True when this session receives the guild's events."""
        return self.shard is None or p.shard_of(guild_id, self.shard[1]) == self.shard[0]


class Gateway:
    """Gateway connections and sessions; ``current`` is the session dispatches go to."""

    def __init__(
        self,
        world: World,
        recorder: Recorder,
        guild_create: Callable[[str], dict[str, Any]],
        *,
        heartbeat_interval_ms: int,
    ) -> None:
        self.world = world
        self.recorder = recorder
        self.guild_create = guild_create
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.sessions: dict[str, Session] = {}
        self.current: Session | None = None
        self.by_shard: dict[tuple[int, int] | None, Session] = {}  # the latest session of each
        self.connections = 0
        self._sockets: set[web.WebSocketResponse] = set()

    def routes(self) -> list[Route]:
        """``/gateway/bot`` and ``/gateway``."""
        return [
            *routes("GET", r"/gateway/bot", self._gateway_bot, "bot"),
            *routes("GET", r"/gateway", self._gateway_info, "none"),
        ]

    def add_routes(self, app: web.Application) -> None:
        """The websocket endpoint."""
        app.router.add_get("/gateway", self.handle)

    async def close_all(self) -> None:
        """Close every connection (the fake is stopping)."""
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1001), 1)

    # ------------------------------------------------------------------ sending

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH to the session of the event's guild, or of shard 0 for a direct message
        (kept for replay if the connection is down); an event of a guild whose shard never
        identified, or whose intent the session did not ask for, reaches nobody."""
        if self.current is None:
            raise RuntimeError("no bot has identified with the fake gateway")
        guild = data.get("guild_id") if isinstance(data, dict) else None
        # Direct messages go to shard 0, as Discord sends them.
        session = self.session_for(str(guild) if guild else "0")
        if session is not None and session.wants(event, in_guild=bool(guild)):
            await self._dispatch_to(session, event, data)

    def session_for(self, guild_id: str) -> Session | None:
        """The latest session whose shard holds the guild."""
        for session in reversed(self.by_shard.values()):
            if session.covers(guild_id):
                return session
        return None

    async def _dispatch_to(self, session: Session, event: str, data: Any) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.frames.append(frame)
        if session.ws is not None and not session.ws.closed:
            await self._send(session.ws, session.conn, frame)

    async def send_op(self, op: int, d: Any) -> None:
        """Send a non-dispatch opcode on the current connection."""
        session = self.current
        if session is None or session.ws is None:
            raise RuntimeError("no gateway connection")
        await self._send(session.ws, session.conn, {"op": op, "d": d, "s": None, "t": None})

    async def _send(self, ws: web.WebSocketResponse, conn: int, frame: dict[str, Any]) -> None:
        self.recorder.frame(
            GatewayFrame("out", conn, frame["op"], frame.get("t"), frame.get("d"), frame.get("s"))
        )
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(frame))

    # ------------------------------------------------------------------ ending a connection

    async def drop(self) -> None:
        """Cut the current connection without a close frame (a network drop)."""
        session = self.current
        if session is None or session.ws is None:
            raise RuntimeError("no gateway connection to drop")
        ws, session.ws = session.ws, None
        transport = ws._req.transport if ws._req is not None else None
        if transport is not None:
            transport.abort()
        self.recorder.notify()

    async def close(self, code: int = 4000) -> None:
        """Close the current connection with a close code."""
        session = self.current
        if session is None or session.ws is None:
            raise RuntimeError("no gateway connection to close")
        ws, session.ws = session.ws, None
        await ws.close(code=code)
        self.recorder.notify()

    # ------------------------------------------------------------------ receiving

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One websocket connection: HELLO, then answer the client's opcodes until it closes."""
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        conn = self.connections
        self._sockets.add(ws)
        try:
            hello = {"heartbeat_interval": self.heartbeat_interval_ms}
            await self._send(ws, conn, {"op": 10, "d": hello, "s": None, "t": None})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op, d = frame.get("op"), frame.get("d")
                self.recorder.frame(GatewayFrame("in", conn, op, None, d, None))
                if op == 1 and self.world.ack_heartbeats:
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
            self.recorder.notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, conn: int, d: dict[str, Any]) -> None:
        w = self.world
        if d.get("token") != w.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = tuple(d["shard"]) if d.get("shard") else None
        session = Session(
            session_id=secrets.token_hex(16),
            token=d["token"],
            ws=ws,
            conn=conn,
            shard=shard,
            intents=int(d.get("intents") or 0),
        )
        self.sessions[session.session_id] = session
        self.current = session
        self.by_shard.pop(shard, None)
        self.by_shard[shard] = session
        guilds = [g for g in w.guild_ids if session.covers(g)]
        ready = p.ready(w.bot_user, guilds, session.session_id, w.gateway_url, w.app_id)
        if shard is not None:
            ready["shard"] = list(shard)
        await self._dispatch_to(session, "READY", ready)
        for guild in guilds:
            await self._dispatch_to(session, "GUILD_CREATE", self.guild_create(guild))

    async def _resume(self, ws: web.WebSocketResponse, conn: int, d: dict[str, Any]) -> None:
        session = self.sessions.get(d.get("session_id", ""))
        if session is None or d.get("token") != session.token:
            await self._send(ws, conn, {"op": 9, "d": False, "s": None, "t": None})
            return
        session.ws, session.conn = ws, conn
        self.current = session
        self.by_shard.pop(session.shard, None)
        self.by_shard[session.shard] = session
        last = int(d.get("seq") or 0)
        for frame in [f for f in session.frames if f["s"] > last]:
            await self._send(ws, conn, frame)
        await self._dispatch_to(session, "RESUMED", {})

    # ------------------------------------------------------------------ REST

    async def _gateway_bot(self, req: Req) -> web.StreamResponse:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return json_response(
            {"url": self.world.gateway_url, "shards": 1, "session_start_limit": limit}
        )

    async def _gateway_info(self, req: Req) -> web.StreamResponse:
        return json_response({"url": self.world.gateway_url})

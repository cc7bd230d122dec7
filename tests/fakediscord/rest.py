"""REST plumbing of the fake Discord: the route table, request parsing (JSON or multipart with
``payload_json`` and ``files[n]``), bot-token auth, upload limits, faults, and the recording of
every call. The routes themselves live with their resource (application, interactions,
messages, guilds)."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from aiohttp import web

from tests.fakediscord.models import Call, UploadedFile
from tests.fakediscord.recording import Recorder
from tests.fakediscord.world import API_PREFIX, World

if TYPE_CHECKING:
    from tests.fakediscord.faults import Faults


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


Handler = Callable[[Req], Awaitable[web.StreamResponse]]


class Route(NamedTuple):
    """One REST route: the method, the whole path (relative to the API base) and who may call."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: Literal["bot", "none"]  # "none": the URL's interaction token authorizes


def routes(methods: str, path: str, handler: Handler, auth: Literal["bot", "none"]) -> list[Route]:
    """One route per method in ``methods`` ("GET PATCH DELETE") for the path regex ``path``."""
    pattern = re.compile(path)
    return [Route(method, pattern, handler, auth) for method in methods.split()]


# Path parts shared by the resources' route tables.
SNOWFLAKE = r"(?P<{}>\d+)"
TOKEN = r"(?P<token>[^/]+)"


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON reply with Content-Type exactly ``application/json`` (discord.py compares it whole)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def error(status: int, message: str, code: int = 0) -> web.Response:
    """A Discord error body: ``{"message": ..., "code": ...}``."""
    return json_response({"message": message, "code": code}, status)


class RestApi:
    """Answers ``/api/v10/*``: records the call, applies faults, auth and limits, then routes."""

    def __init__(
        self, world: World, recorder: Recorder, faults: Faults, routes: Iterable[Route]
    ) -> None:
        self.world = world
        self.recorder = recorder
        self.faults = faults
        self.routes = list(routes)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler for every REST path."""
        path = "/" + request.match_info["tail"]
        raw_path = request.raw_path.split("?", 1)[0].removeprefix(API_PREFIX)
        call = self.recorder.call(
            Call(request.method, path, dict(request.query), dict(request.headers), None, [])
        )
        try:
            await self._read_body(request, call)
            response = await self._faulted(request, call, path, raw_path)
        except Exception as exc:  # report the fake's own bugs as a 500 the test will see
            response = error(500, f"fake discord error: {exc!r}")
        call.status = response.status
        self.recorder.notify()
        return response

    async def _faulted(
        self, request: web.Request, call: Call, path: str, raw_path: str
    ) -> web.StreamResponse:
        fault = self.faults.take(call.method, path, bool(call.files))
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status == 0:  # only slow: the real answer, late
            fault = None
        if fault is not None and not fault.after:
            return fault.response()
        response = await self._route(request, call, raw_path)
        return fault.response() if fault is not None else response

    async def _route(self, request: web.Request, call: Call, raw_path: str) -> web.StreamResponse:
        for route in self.routes:
            m = route.pattern.fullmatch(raw_path)
            if m is None or route.method != call.method:
                continue
            if route.auth == "bot" and request.headers.get("Authorization") != (
                f"Bot {self.world.token}"
            ):
                return error(401, "401: Unauthorized")
            if self._too_large(call.files, route.auth):
                return error(413, "Request entity too large", 40005)
            match = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
            return await route.handler(Req(request, match, call))
        return error(404, "404: Not Found")

    def _too_large(self, files: list[UploadedFile], auth: Literal["bot", "none"]) -> bool:
        # An interaction's attachment_size_limit binds responses to it (its token's routes);
        # the bot token uploads under the server's own limit, which may be lower.
        per_file = (
            self.world.attachment_size_limit if auth == "none" else self.world.guild_upload_limit
        )
        total = sum(len(f.data) for f in files)
        return total > self.world.max_request_bytes or any(len(f.data) > per_file for f in files)

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

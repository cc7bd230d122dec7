"""The fake's CDN: attachment URLs signed like Discord's (``ex``/``is``/``hm``), which expire
on the fake's clock, and the handler that serves them (plain and ``/media`` proxy URLs)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import urllib.parse
from typing import Any

from aiohttp import web

from tests.fakediscord.models import Call, StoredAttachment, png_size
from tests.fakediscord.recording import Recorder
from tests.fakediscord.world import World


class Cdn:
    """Signs attachment URLs and serves the files behind them."""

    def __init__(self, world: World, recorder: Recorder) -> None:
        self.world = world
        self.recorder = recorder
        self._secret = secrets.token_bytes(16)

    def add_routes(self, app: web.Application) -> None:
        """Serve attachments at Discord's CDN paths."""
        app.router.add_get("/attachments/{channel}/{att}/{filename}", self.handle)
        app.router.add_get("/media/attachments/{channel}/{att}/{filename}", self.handle)

    def _digest(self, path: str, ex: str, issued: str) -> str:
        return hmac.new(self._secret, f"{path}|{ex}|{issued}".encode(), hashlib.sha256).hexdigest()

    def sign(self, path: str, expires: float) -> str:
        """The ``ex``/``is``/``hm`` query of a signed CDN URL for ``path``."""
        ex = format(int(expires), "x")
        issued = format(int(self.world.now()), "x")
        return f"ex={ex}&is={issued}&hm={self._digest(path, ex, issued)}"

    def attachment_json(self, att: StoredAttachment) -> dict[str, Any]:
        """An attachment object with freshly signed URLs on the fake CDN."""
        base = self.world.base_url
        quoted = urllib.parse.quote(att.filename)
        path = f"/attachments/{att.channel_id}/{att.id}/{quoted}"
        query = self.sign(path, self.world.now() + self.world.cdn_ttl)
        data: dict[str, Any] = {
            "id": att.id,
            "filename": att.filename,
            "size": len(att.data),
            "content_type": att.content_type,
            "url": f"{base}{path}?{query}",
            "proxy_url": f"{base}/media{path}?{query}",
        }
        if att.description is not None:
            data["description"] = att.description
        size = png_size(att.data)
        if size:
            data["width"], data["height"] = size
        return data

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve a file if its URL is signed by this fake and not expired; 404 otherwise."""
        path = request.path.removeprefix("/media")
        call = self.recorder.call(
            Call("GET", request.path, dict(request.query), dict(request.headers), None, [])
        )
        att = self.world.attachments.get(request.match_info["att"])
        q = request.query
        ok = att is not None and all(k in q for k in ("ex", "is", "hm"))
        if ok:
            expected = self._digest(path, q["ex"], q["is"])
            ok = hmac.compare_digest(expected, q["hm"]) and int(q["ex"], 16) > self.world.now()
        if not ok or att is None:
            call.status = 404
            self.recorder.notify()
            return web.Response(status=404, text="This content is no longer available.")
        call.status = 200
        self.recorder.notify()
        return web.Response(body=att.data, headers={"Content-Type": att.content_type})

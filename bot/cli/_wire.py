"""What the configured backend would send for a request, captured without sending it anywhere.

`remixbot remix --dry-run` must show what the real run would send, in the backend's own field
names. Rather than keep a second copy of each wire format here, the backend itself builds and
sends its request, to a one-shot listener on 127.0.0.1 that records the request and refuses it
(HTTP 400, which every backend maps to a rejection, so nothing is retried). The backend runs its
own `check` and size checks on the way, so the dry run refuses exactly what the real run refuses.
The listener gets a placeholder key, never the real one.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bot.errors import RemixError
from bot.media import EncodedImage
from bot.remix.backends import make_backend
from bot.remix.request import RemixRequest
from bot.secrets import Secret
from bot.settings import Settings

_PLACEHOLDER_KEY = "dry-run-placeholder-key"
_DATA_URI = re.compile(r"^data:([\w/+.-]+);base64,")


@dataclass(frozen=True)
class WireRequest:
    """One captured request: where it goes, how it is keyed, and its body with images described."""

    method: str
    url: str
    content_type: str
    auth_header: str
    body: Any  # form fields by name (files described), or the JSON body (data URIs described)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data for `--dry-run --json`."""
        return dataclasses.asdict(self)

    def lines(self) -> list[tuple[str, str]]:
        """(field, value) pairs for a terminal, nested JSON flattened to dotted names."""
        return list(_flatten("", self.body))


async def capture(
    settings: Settings,
    request: RemixRequest,
    image: EncodedImage,
    refs: Sequence[EncodedImage],
    mask: EncodedImage | None = None,
) -> WireRequest:
    """Have the configured backend send `request` to a local listener and return what it sent.

    Raises what the backend raises before sending (InvalidRequest, InvalidImage).
    """
    captured: list[WireRequest] = []

    async def record(req: web.Request) -> web.Response:
        if not captured:
            captured.append(await _read(req, settings))
        return web.json_response({"error": "dry run: not sent"}, status=400)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        local = dataclasses.replace(
            settings, backend_url=f"http://127.0.0.1:{port}", api_key=Secret(_PLACEHOLDER_KEY)
        )
        async with aiohttp.ClientSession(trust_env=False) as session:
            try:
                await make_backend(local, session).remix(request, image, refs, mask=mask)
            except RemixError:
                if not captured:
                    raise
    finally:
        await runner.cleanup()
    if not captured:
        raise RemixError(f"The {settings.backend} backend sent nothing to show for a dry run.")
    return captured[0]


async def _read(req: web.Request, settings: Settings) -> WireRequest:
    auth = "Authorization" if "Authorization" in req.headers else "Api-Key"
    url = settings.backend_url.rstrip("/") + req.path_qs
    if req.content_type == "multipart/form-data":
        body: Any = await _read_form(req)
    elif req.content_type == "application/json":
        body = _describe_json(await req.json())
    else:
        body = f"{len(await req.read())} bytes"
    return WireRequest(req.method, url, req.content_type, auth, body)


async def _read_form(req: web.Request) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    reader = await req.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
            continue
        data = await part.read()
        kind = part.headers.get(aiohttp.hdrs.CONTENT_TYPE, "")
        if part.filename is not None:
            value: Any = {"file": part.filename, "content_type": kind, "bytes": len(data)}
        elif kind.startswith("application/json"):
            value = _describe_json(json.loads(data))
        else:
            value = data.decode("utf-8", "replace")
        if part.name in fields:  # a repeated field (style codes, style reference images)
            previous = fields[part.name]
            fields[part.name] = (
                [*previous, value] if isinstance(previous, list) else [previous, value]
            )
        else:
            fields[part.name] = value
    return fields


def _describe_json(value: Any) -> Any:
    """The JSON body with every inline image (a `data:` URI) replaced by its type and size."""
    if isinstance(value, dict):
        return {k: _describe_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_describe_json(v) for v in value]
    if isinstance(value, str) and (found := _DATA_URI.match(value)):
        size = len(base64.b64decode(value[found.end() :], validate=False))
        return {"inline": found.group(1), "bytes": size}
    return value


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict) and not _is_file(value):
        out: list[tuple[str, str]] = []
        for key, item in value.items():
            out += _flatten(f"{prefix}.{key}" if prefix else str(key), item)
        return out
    if isinstance(value, list) and len(value) == 1 and not prefix:
        return _flatten("", value[0])  # one task in a JSON task array: no "[0]." on every line
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        out = []
        for n, item in enumerate(value):
            out += _flatten(f"{prefix}[{n}]", item)
        return out
    return [(prefix, _text(value))]


def _is_file(value: dict[str, Any]) -> bool:
    return "bytes" in value and ("file" in value or "inline" in value)


def _text(value: Any) -> str:
    if isinstance(value, dict) and _is_file(value):
        what = value.get("file") or "inline image"
        kind = value.get("content_type") or value.get("inline")
        return f"{what} ({kind}, {value['bytes']} bytes)"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value)

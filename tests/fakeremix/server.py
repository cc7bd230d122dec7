"""The fake remix server: Ideogram v3, Ideogram legacy, Runware, a task proxy (v3 form or legacy
body) and a reseller's edit endpoint on one app."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import hashlib
import hmac
import io
import itertools
import json
import math
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image

from bot.media import sniff_format
from bot.remix import enums
from tests.fakeremix.images import PNG_MAGIC, make_image, photo_like

API_KEY = "fake-key-5f3a9c01d2"
HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
STYLE_CODE = re.compile(r"^[0-9a-fA-F]{8}$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MAX_IMAGE = 10 * 1000 * 1000

V3_FIELDS = {
    "image", "prompt", "image_weight", "seed", "resolution", "aspect_ratio", "rendering_speed",
    "magic_prompt", "negative_prompt", "num_images", "color_palette", "style_codes", "style_type",
    "style_preset", "custom_model_uri", "style_reference_images", "character_reference_images",
    "character_reference_images_mask",
}  # fmt: skip
LEGACY_FIELDS = {
    "prompt", "image_weight", "aspect_ratio", "model", "magic_prompt_option",
    "magic_prompt_version", "seed", "style_type", "negative_prompt", "num_images", "resolution",
    "color_palette",
}  # fmt: skip
EDIT_FIELDS = {
    "image_file", "mask", "prompt", "model", "magic_prompt_option", "seed", "style_type",
}  # fmt: skip
RUNWARE_FIELDS = {
    "taskType", "taskUUID", "model", "positivePrompt", "negativePrompt", "referenceImages",
    "width", "height", "numberResults", "seed", "outputType", "outputFormat", "outputQuality",
    "deliveryMethod", "webhookURL", "includeCost", "ttl", "uploadEndpoint", "safety",
    "providerSettings", "inputs",
}  # fmt: skip
RUNWARE_IDEOGRAM = {
    "renderingSpeed", "magicPrompt", "styleType", "styleReferenceImages", "remixStrength",
    "stylePreset", "styleCode", "colorPalette", "characterReferenceImages",
    "characterReferenceImagesMask",
}  # fmt: skip


# Validates one recorded API call and builds the JSON reply (raising Reject for a 4xx).
Reply = Callable[[web.Request, "Recorded"], dict[str, Any]]


class Reject(Exception):
    """A request the real API would refuse: status and the body it would send."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(json.dumps(body))
        self.status = status
        self.body = body


def _bad(message: str, status: int = 400) -> Reject:
    return Reject(status, {"error": message})


@dataclass
class FilePart:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def format(self) -> str | None:
        """Format sniffed from the bytes."""
        return sniff_format(self.data)

    def summary(self) -> dict[str, Any]:
        """JSON-safe description (for the control API)."""
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": len(self.data),
            "format": self.format,
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    fields: dict[str, list[str]] = field(default_factory=dict)
    field_types: dict[str, list[str | None]] = field(default_factory=dict)
    files: dict[str, list[FilePart]] = field(default_factory=dict)
    json: Any = None

    def field(self, name: str) -> str | None:
        """The single value of a text field, or None."""
        values = self.fields.get(name)
        return values[0] if values else None

    def summary(self) -> dict[str, Any]:
        """JSON-safe description (for the control API)."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "fields": self.fields,
            "field_types": self.field_types,
            "files": {k: [f.summary() for f in v] for k, v in self.files.items()},
            "json": self.json,
        }


@dataclass
class Fault:
    """A fault to inject on the next matching API call(s)."""

    kind: str  # 429 (in-flight) 429_rate 400 400_runware 400_runware_flagged 401 402 402_daily 403 404 422 422_terse
    # 500 502 503 504 524 hang malformed missing_data empty_data redirect busy_code
    times: int = 1
    retry_after: str | None = None
    target: str = "api"  # "api" (POSTs) or "poll" (task queries)


class FakeRemix:
    """State and handlers of the fake server; attributes are the knobs tests turn."""

    def __init__(self) -> None:
        self.base_url = ""
        self.image_base = ""  # where result URLs point; defaults to base_url
        self.requests: list[Recorded] = []
        self.hits: list[str] = []  # every path requested, downloads included
        self.faults: list[Fault] = []
        self.image_mode = "ok"
        self.unsafe: set[int] = set()
        self.damaged: set[int] = set()  # result indexes served cut in half (a truncated body)
        self.url_ttl = 3600
        # Where Runware takes the source image: "top" (top-level referenceImages, its provider
        # page; `inputs` refused) or "inputs" (inputs.referenceImages, its model pages; a
        # top-level one refused with a 400 naming the missing inputs.referenceImages).
        self.runware_image_in = "top"
        self.proxy_mode = "task"  # "task" or "sync"
        self.task_polls = 1  # polls answered "processing" before the terminal state
        self.task_outcome = "succeed"  # "succeed", "failed", "never"
        self.hang_seconds = 30.0
        self.api_delay = 0.0  # seconds every API call takes before it answers (or faults)
        # The in-flight limit in images, as Ideogram enforces it: past it a call gets an
        # in-flight 429 (0: no limit). `max_inflight_stated` is put in that 429's body.
        self.inflight_limit = 0
        self.max_inflight_stated = 0
        self.inflight_images = 0
        self.peak_inflight = 0
        self.slow_delay = 0.3
        self.big_size = 2 * 1024 * 1024
        # Results as a real backend makes them (e.g. [1152, 864] with result_format "PNG"):
        # photo-like pixels, so their size and decoding cost are realistic. None: tiny images.
        self.result_size: list[int] | None = None
        self.result_format: str | None = None
        self.tasks: dict[str, dict[str, Any]] = {}
        self._images: dict[str, tuple[bytes, str]] = {}
        self._secret = os.urandom(16)
        self._stop = asyncio.Event()
        self._counter = itertools.count(1)

    # --- knobs ---------------------------------------------------------------------------------
    def fail_next(self, kind: str, times: int = 1, **kw: Any) -> None:
        """Inject `kind` on the next `times` matching calls."""
        self.faults.append(Fault(kind=str(kind), times=times, **kw))

    def api_requests(self) -> list[Recorded]:
        """Recorded API calls (controls, downloads and polls excluded)."""
        return [r for r in self.requests if r.method == "POST"]

    def last(self) -> Recorded:
        """The last recorded API POST."""
        return self.api_requests()[-1]

    def result_url(self, seed: int = 1, index: int = 0) -> str:
        """A fresh result URL shaped by image_mode (what the API endpoints put in replies)."""
        return self._result_url(seed, index)

    def stop(self) -> None:
        """Release hanging handlers and slow streams (called before shutdown)."""
        self._stop.set()

    # --- app -----------------------------------------------------------------------------------
    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._track], client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_post("/v1/ideogram-v3/remix", self.v3)
        r.add_post("/remix", self.legacy)
        r.add_post("/ideogram/remix", self.proxy_submit_legacy)
        r.add_post("/ideogram/edit", self.edit)
        r.add_post("/v1", self.runware)
        r.add_post("/ideogram/v1/ideogram-v3/remix", self.proxy_submit)
        r.add_get("/kling/v1/images/generations/{task_id}", self.proxy_query)
        r.add_get("/images/{name}", self.image)
        r.add_get("/dl/slow", self.dl_slow)
        r.add_get("/dl/huge", self.dl_huge)
        r.add_get("/dl/huge-nolen", self.dl_huge_nolen)
        r.add_get("/dl/gzip-bomb", self.dl_gzip_bomb)
        r.add_get("/dl/redirect", self.dl_redirect)
        r.add_get("/dl/notimage", self.dl_notimage)
        r.add_post("/_control/configure", self.c_configure)
        r.add_post("/_control/fault", self.c_fault)
        r.add_get("/_control/requests", self.c_requests)
        r.add_post("/_control/reset", self.c_reset)
        return app

    @web.middleware
    async def _track(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/_control/"):
            self.hits.append(request.path)
        try:
            return await handler(request)
        except Reject as exc:
            return web.json_response(exc.body, status=exc.status)

    # --- common --------------------------------------------------------------------------------
    async def _record(self, request: web.Request) -> Recorded:
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k: v for k, v in request.headers.items()},
        )
        ctype = request.content_type
        if request.method == "POST" and ctype == "multipart/form-data":
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                data = await part.read(decode=False)  # type: ignore[union-attr]
                name = part.name or ""  # type: ignore[union-attr]
                ptype = part.headers.get("Content-Type")  # type: ignore[union-attr]
                if part.filename:  # type: ignore[union-attr]
                    rec.files.setdefault(name, []).append(FilePart(part.filename, ptype, data))  # type: ignore[union-attr]
                else:
                    rec.fields.setdefault(name, []).append(data.decode("utf-8"))
                    rec.field_types.setdefault(name, []).append(ptype)
        elif request.method == "POST" and ctype == "application/json":
            try:
                rec.json = await request.json()
            except ValueError:
                rec.json = "<invalid json>"
        elif request.method == "POST":
            rec.json = (await request.read()).decode("utf-8", "replace")
        self.requests.append(rec)
        return rec

    async def _answer(
        self, request: web.Request, scheme: str, reply: Reply, *, accept_json: bool = False
    ) -> web.StreamResponse:
        """An API POST: record it, check the key (and with `accept_json` the Accept header),
        apply a queued fault, else validate and reply.

        With `inflight_limit`, images already generating count against it as Ideogram counts
        them: a call that would go past it gets the in-flight 429 at once (not run, not billed).
        """
        rec = await self._record(request)
        self._auth(request, scheme)
        if accept_json:
            _require_accept_json(request)
        images = _images_asked(rec)
        if self.inflight_limit and self.inflight_images + images > self.inflight_limit:
            return await self._apply(Fault("429"))
        self.inflight_images += images
        self.peak_inflight = max(self.peak_inflight, self.inflight_images)
        try:
            fault = await self._fault("api")
            if fault is not None:
                return fault
            return web.json_response(reply(request, rec))
        finally:
            self.inflight_images -= images

    def _auth(self, request: web.Request, scheme: str) -> None:
        if scheme == "api-key":
            ok = request.headers.get("Api-Key") == API_KEY
        else:
            ok = request.headers.get("Authorization") == f"Bearer {API_KEY}"
        if not ok:
            raise Reject(401, {"error": "Invalid or missing API key."})

    async def _fault(self, target: str) -> web.StreamResponse | None:
        if target == "api" and self.api_delay > 0:  # a generation that takes a while
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.api_delay)
        for fault in self.faults:
            if fault.target == target and fault.times > 0:
                fault.times -= 1
                return await self._apply(fault)
        return None

    async def _apply(self, fault: Fault) -> web.StreamResponse:
        kind = fault.kind
        if kind in ("429", "429_rate"):
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            if kind == "429_rate":  # a plain rate limit (a proxy's), not the in-flight limit
                return web.json_response(
                    {"error": "Too many requests."}, status=429, headers=headers
                )
            body: dict[str, Any] = {
                "error": "Too many requests in flight.",
                "reject_reason": "inflight_limit",
            }
            if self.max_inflight_stated:
                body["max_inflight_requests"] = self.max_inflight_stated
            return web.json_response(body, status=429, headers=headers)
        if kind == "422":
            return web.json_response(
                {
                    "error": "Prompt provided failed safety check due to the inclusion of "
                    "prohibited content."
                },
                status=422,
            )
        if kind == "422_terse":  # a 422 whose wording does not name the safety check
            return web.json_response({"error": "Request refused."}, status=422)
        if kind == "402":
            return web.json_response(
                {"error": "Insufficient funds.", "reject_reason": "insufficient_funds"}, status=402
            )
        if kind == "402_daily":  # the account's daily spending limit, not its balance
            return web.json_response(
                {"error": "Out of credit", "reject_reason": "daily_limit"}, status=402
            )
        if kind == "400_runware":  # Runware's envelope, naming a parameter other than the image
            raise _rw("invalidPositivePrompt", "Invalid positivePrompt.", "positivePrompt")
        if kind == "400_runware_flagged":  # the source image refused by a safety check
            raise _rw(
                "contentModeration",
                "The inputs were flagged by the safety check (NSFW content).",
                "referenceImages",
            )
        if kind == "busy_code":  # a poll answer with an error code while the task still runs
            return web.json_response(
                {"code": 1303, "message": "busy, try later", "data": {"task_status": "processing"}}
            )
        if kind in ("400", "401", "403", "404", "500", "502", "503", "504", "524"):
            return web.json_response({"error": f"Injected HTTP {kind}."}, status=int(kind))
        if kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.hang_seconds)
            return web.json_response({"error": "late"}, status=504)
        if kind == "malformed":
            return web.Response(text='{"created": "x", "data": [', content_type="application/json")
        if kind == "missing_data":
            return web.json_response({"created": "2026-01-01T00:00:00+00:00"})
        if kind == "empty_data":  # a 2xx that ran (and billed) but lists no image
            return web.json_response({"created": "2026-01-01T00:00:00+00:00", "data": []})
        if kind == "redirect":
            raise web.HTTPFound(self.base_url + "/elsewhere")
        raise ValueError(f"unknown fault {kind!r}")

    def _signed(self, name: str, exp: int) -> str:
        sig = hmac.new(self._secret, f"{name}:{exp}".encode(), hashlib.sha256).hexdigest()
        return f"{self.image_base or self.base_url}/images/{name}?exp={exp}&sig={sig}"

    def _result_url(self, seed: int, index: int) -> str:
        """A URL for a new result image, shaped by image_mode."""
        base = self.image_base or self.base_url
        fmt = self.result_format or ("PNG" if index % 2 == 0 else "JPEG")
        name = f"{uuid.uuid4().hex}.{'png' if fmt == 'PNG' else 'jpg'}"
        data = (
            photo_like(fmt, tuple(self.result_size), seed % 8)
            if self.result_size
            else make_image(fmt, seed=seed)
        )
        if index in self.damaged:
            data = data[: len(data) // 2]  # the magic bytes stay: only decoding finds it
        self._images[name] = (data, fmt)
        exp = int(time.time()) + self.url_ttl
        mode = self.image_mode
        if mode == "expired":
            return self._signed(name, int(time.time()) - 60)
        if mode == "slow":
            return f"{base}/dl/slow"
        if mode == "huge":
            return f"{base}/dl/huge"
        if mode == "huge_nolen":
            return f"{base}/dl/huge-nolen"
        if mode == "gzip_bomb":
            return f"{base}/dl/gzip-bomb"
        if mode == "notimage":
            return f"{base}/dl/notimage"
        if mode == "redirect_internal":
            return f"{base}/dl/redirect?to=http://169.254.169.254/latest/meta-data/"
        if mode == "redirect_ok":
            target = self._signed(name, exp)
            return f"{base}/dl/redirect?to={_quote(target)}"
        return self._signed(name, exp)

    def _ideogram_body(
        self, prompt: str, n: int, seed: int | None, resolution: str, style: str | None
    ) -> dict[str, Any]:
        data = []
        for i in range(n):
            s = (seed + i) % (enums.MAX_SEED + 1) if seed is not None else next(self._counter)
            unsafe = i in self.unsafe
            item: dict[str, Any] = {
                "prompt": prompt,
                "resolution": resolution,
                "is_image_safe": not unsafe,
                "seed": s,
                "style_type": style or "GENERAL",
                "url": None if unsafe else self._result_url(s, i),
            }
            data.append(item)
        return {"created": "2026-11-22T00:00:00+00:00", "data": data}

    # --- Ideogram v3 ---------------------------------------------------------------------------
    async def v3(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/ideogram-v3/remix` with the Api-Key header."""
        return await self._answer(request, "api-key", self._v3_reply)

    def _v3_reply(self, request: web.Request, rec: Recorded) -> dict[str, Any]:
        values = self._validate_v3(request, rec)
        return self._ideogram_body(
            values["prompt"], values["n"], values["seed"], values["resolution"], values["style"]
        )

    def _validate_v3(self, request: web.Request, rec: Recorded) -> dict[str, Any]:
        if request.content_type != "multipart/form-data":
            raise _bad("Remix takes multipart/form-data only.")
        _require(rec, fields=("prompt",), files=("image",))
        unknown = (set(rec.fields) | set(rec.files)) - V3_FIELDS
        if unknown:
            raise _bad(f"Unknown field(s): {', '.join(sorted(unknown))}.")
        for name, values in rec.fields.items():
            if len(values) > 1 and name != "style_codes":
                raise _bad(f"Field {name} given more than once.")
        images = rec.files.get("image", [])
        if len(images) != 1:
            raise _bad("Exactly one image file is required.")
        _check_file("image", images[0])
        prompt = rec.field("prompt")
        if not prompt:
            raise _bad("prompt is required.")
        weight = _int_field(rec, "image_weight", 1, 100)
        seed = _int_field(rec, "seed", 0, enums.MAX_SEED)
        n = _int_field(rec, "num_images", 1, 8) or 1
        aspect = rec.field("aspect_ratio")
        resolution = rec.field("resolution")
        if aspect and resolution:
            raise _bad("aspect_ratio and resolution are mutually exclusive.")
        _enum(rec, "aspect_ratio", enums.ASPECT_RATIOS)
        _enum(rec, "resolution", enums.RESOLUTIONS)
        _enum(rec, "rendering_speed", enums.RENDERING_SPEEDS)
        _enum(rec, "magic_prompt", enums.MAGIC_PROMPTS)
        _enum(rec, "style_type", enums.STYLE_TYPES)
        _enum(rec, "style_preset", enums.STYLE_PRESETS)
        if "negative_prompt" in rec.fields and not rec.field("negative_prompt"):
            raise _bad("negative_prompt must not be empty.")
        if "color_palette" in rec.fields:
            if rec.field_types["color_palette"][0] != "application/json":
                raise _bad("color_palette must be sent with content type application/json.")
            _check_palette(rec.field("color_palette") or "")
        codes = rec.fields.get("style_codes", [])
        for code in codes:
            if not STYLE_CODE.match(code):
                raise _bad(f"Invalid style code {code!r}.")
        refs = rec.files.get("style_reference_images", [])
        if codes and (rec.field("style_type") or refs):
            raise _bad("style_codes cannot be used with style_reference_images or style_type.")
        for ref in refs:
            _check_file("style_reference_images", ref)
        if sum(len(r.data) for r in refs) > MAX_IMAGE:
            raise _bad("style_reference_images exceed 10MB in total.")
        del weight
        return {
            "prompt": prompt,
            "n": n,
            "seed": seed,
            "resolution": resolution or _resolution_for(aspect or "1x1", enums.RESOLUTIONS),
            "style": rec.field("style_type"),
        }

    # --- Ideogram legacy ---------------------------------------------------------------------
    async def legacy(self, request: web.Request) -> web.StreamResponse:
        """`POST /remix` with the Api-Key header."""
        return await self._answer(request, "api-key", self._legacy_reply)

    def _legacy_reply(
        self,
        request: web.Request,
        rec: Recorded,
        models: tuple[str, ...] = enums.LEGACY_MODELS,
        style_types: tuple[str, ...] = enums.LEGACY_STYLE_TYPES,
    ) -> dict[str, Any]:
        """Validate the `image_request` + `image_file` body (`models` and `style_types`: the
        ones the endpoint lists); Ideogram's synchronous reply."""
        if request.content_type != "multipart/form-data":
            raise _bad("Remix takes multipart/form-data only.")
        _require(rec, fields=("image_request",), files=("image_file",))
        if set(rec.fields) != {"image_request"} or set(rec.files) != {"image_file"}:
            raise _bad("Exactly the parts image_request and image_file are required.")
        if rec.field_types["image_request"][0] != "application/json":
            raise _bad("image_request must be sent with content type application/json.")
        _check_file("image_file", rec.files["image_file"][0])
        try:
            body = json.loads(rec.field("image_request") or "")
        except ValueError:
            raise _bad("image_request is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _bad("image_request must be an object.")
        rec.json = body
        unknown = set(body) - LEGACY_FIELDS
        if unknown:
            raise _bad(f"Unknown image_request field(s): {', '.join(sorted(unknown))}.")
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            raise _bad("prompt is required.")
        _int_value(body, "image_weight", 1, 100)
        _int_value(body, "seed", 0, enums.MAX_SEED)
        n = _int_value(body, "num_images", 1, 8) or 1
        model = body.get("model", "V_2")
        if model not in models:
            raise _bad(f"Invalid model {model!r}; one of {', '.join(models)}.")
        aspects = tuple(f"ASPECT_{a.replace('x', '_')}" for a in enums.LEGACY_ASPECT_RATIOS)
        resolutions = tuple(f"RESOLUTION_{r.replace('x', '_')}" for r in enums.LEGACY_RESOLUTIONS)
        if "aspect_ratio" in body and "resolution" in body:
            raise _bad("aspect_ratio and resolution are mutually exclusive.")
        if "aspect_ratio" in body and body["aspect_ratio"] not in aspects:
            raise _bad(f"Invalid aspect_ratio {body['aspect_ratio']!r}.")
        if "resolution" in body and body["resolution"] not in resolutions:
            raise _bad(f"Invalid resolution {body['resolution']!r}.")
        if body.get("magic_prompt_option", "AUTO") not in enums.MAGIC_PROMPTS:
            raise _bad("Invalid magic_prompt_option.")
        if "style_type" in body:
            if body["style_type"] not in style_types:
                raise _bad(f"Invalid style_type; one of {', '.join(style_types)}.")
            if model in ("V_1", "V_1_TURBO"):
                raise _bad("style_type is not supported by V_1 models.")
        if "negative_prompt" in body and model not in enums.LEGACY_NEGATIVE_OK:
            raise _bad(f"negative_prompt is not supported by {model}.")
        if "color_palette" in body:
            if model in enums.LEGACY_NO_PALETTE:
                raise _bad(f"color_palette is not supported by {model}.")
            _check_palette(json.dumps(body["color_palette"]))
        if "resolution" in body:
            resolution = body["resolution"].removeprefix("RESOLUTION_").replace("_", "x")
        else:
            aspect = body.get("aspect_ratio", "ASPECT_1_1").removeprefix("ASPECT_")
            resolution = _resolution_for(aspect.replace("_", "x"), enums.LEGACY_RESOLUTIONS)
        return self._ideogram_body(
            body["prompt"], n, body.get("seed"), resolution, body.get("style_type")
        )

    # --- a reseller's synchronous edit ---------------------------------------------------------
    async def edit(self, request: web.Request) -> web.StreamResponse:
        """`POST /ideogram/edit`: flat multipart fields, Bearer, Ideogram's synchronous reply."""
        return await self._answer(request, "bearer", self._edit_reply)

    def _edit_reply(self, request: web.Request, rec: Recorded) -> dict[str, Any]:
        if request.content_type != "multipart/form-data":
            raise _bad("Edit takes multipart/form-data only.")
        _require(rec, fields=("prompt",), files=("image_file",))
        unknown = (set(rec.fields) | set(rec.files)) - EDIT_FIELDS
        if unknown:
            raise _bad(f"Unknown field(s): {', '.join(sorted(unknown))}.")
        for name, values in [*rec.fields.items(), *rec.files.items()]:
            if len(values) > 1:
                raise _bad(f"Field {name} given more than once.")
        image = rec.files["image_file"][0]
        _check_file("image_file", image)
        size = _pixel_size(image.data)
        if "mask" in rec.files:
            _check_mask(rec.files["mask"][0], size)
        model = rec.field("model") or "V_2"
        if model not in enums.EDIT_MODELS:
            raise _bad(f"Invalid model {model!r}.")
        _enum(rec, "magic_prompt_option", enums.MAGIC_PROMPTS)
        _enum(rec, "style_type", enums.EDIT_STYLE_TYPES)
        if rec.field("style_type") and model in ("V_1", "V_1_TURBO"):
            raise _bad("style_type is not supported by V_1 models.")
        seed = _int_field(rec, "seed", 0, enums.MAX_SEED)
        body = self._ideogram_body(
            rec.field("prompt") or "", 1, seed, f"{size[0]}x{size[1]}", rec.field("style_type")
        )
        for item in body["data"]:
            del item["style_type"]  # the reseller's documented reply has none
        return body

    # --- Runware -------------------------------------------------------------------------------
    async def runware(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1` with a JSON task array and Bearer auth."""
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            # Runware's documented refusal of a key: 401 with its per-task error envelope.
            await self._record(request)
            raise Reject(
                401,
                {
                    "errors": [
                        {
                            "code": "invalidApiKey",
                            "message": "Invalid API key. Get one at https://my.runware.ai/signup",
                            "parameter": "apiKey",
                            "taskType": "authentication",
                        }
                    ]
                },
            )
        return await self._answer(request, "bearer", self._runware_reply)

    def _runware_reply(self, request: web.Request, rec: Recorded) -> dict[str, Any]:
        tasks = rec.json
        if request.content_type != "application/json" or not isinstance(tasks, list) or not tasks:
            raise _rw("invalidRequestBody", "The body must be a JSON array of tasks.", None)
        results = []
        for task in tasks:
            if not isinstance(task, dict):
                raise _rw("invalidRequestBody", "Each task must be an object.", None)
            if task.get("taskType") == "authentication":
                continue
            results.extend(self._runware_task(task))
        return {"data": results}

    def _runware_task(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        tid = task.get("taskUUID")
        if task.get("taskType") != "imageInference":
            raise _rw("unsupportedTaskType", "Unsupported taskType.", "taskType", tid)
        unknown = set(task) - RUNWARE_FIELDS
        if unknown:
            raise _rw("unsupportedParameter", f"Unknown {sorted(unknown)[0]}.", sorted(unknown)[0])
        if not isinstance(tid, str) or not UUID4.match(tid):
            raise _rw("invalidTaskUUID", "taskUUID must be a UUID v4.", "taskUUID", tid)
        model = task.get("model")
        if model not in enums.RUNWARE_REMIX_MODELS:
            raise _rw("invalidModel", f"Model {model!r} is not a remix model.", "model", tid)
        prompt = task.get("positivePrompt")
        if not isinstance(prompt, str) or not 1 <= len(prompt) <= 2000:
            raise _rw("invalidPositivePrompt", "positivePrompt 1-2000.", "positivePrompt", tid)
        if "negativePrompt" in task:
            if model == "ideogram:2@2":
                raise _rw("unsupportedParameter", "No negativePrompt.", "negativePrompt", tid)
            neg = task["negativePrompt"]
            if not isinstance(neg, str) or not 1 <= len(neg) <= 2000:
                raise _rw("invalidNegativePrompt", "1-2000.", "negativePrompt", tid)
        self._runware_source(task, tid)
        w, h = task.get("width"), task.get("height")
        if f"{w}x{h}" not in enums.RUNWARE_SIZES[model]:
            raise _rw("invalidSize", f"{w}x{h} is not allowed for {model}.", "width", tid)
        n = task.get("numberResults", 1)
        if not isinstance(n, int) or not 1 <= n <= 20:
            raise _rw("invalidNumberResults", "1-20.", "numberResults", tid)
        seed = task.get("seed")
        if seed is not None and (not isinstance(seed, int) or seed < 1):
            raise _rw("invalidSeed", "seed must be >= 1.", "seed", tid)
        if task.get("outputType", "URL") not in ("URL", "dataURI", "base64Data"):
            raise _rw("invalidOutputType", "Bad outputType.", "outputType", tid)
        ide = (task.get("providerSettings") or {}).get("ideogram") or {}
        if set(task.get("providerSettings") or {}) - {"ideogram"}:
            raise _rw("unsupportedProvider", "Only ideogram settings.", "providerSettings", tid)
        self._runware_ideogram(ide, model, tid)
        out = []
        for i in range(n):
            s = seed + i if seed is not None else next(self._counter)
            item: dict[str, Any] = {
                "taskType": "imageInference",
                "taskUUID": tid,
                "imageUUID": str(uuid.uuid4()),
                "seed": s,
            }
            if task.get("outputType", "URL") == "URL":
                item["imageURL"] = self._result_url(s, i)
            else:
                data = make_image("PNG", seed=s)
                b64 = base64.b64encode(data).decode()
                if task["outputType"] == "dataURI":
                    item["imageDataURI"] = "data:image/png;base64," + b64
                else:
                    item["imageBase64Data"] = b64
            out.append(item)
        return out

    def _runware_source(self, task: dict[str, Any], tid: str) -> None:
        """Exactly one source image, where `runware_image_in` says Runware takes it."""
        if self.runware_image_in == "inputs":
            # The model page: "Input resources for the task ... must be nested inside the
            # inputs object. inputs » referenceImages ... array of strings required items: 1".
            inputs = task.get("inputs")
            if "referenceImages" in task or not isinstance(inputs, dict):
                raise _rw(
                    "missingParameter",
                    "Missing required parameter inputs.referenceImages: input resources must be "
                    "nested inside the inputs object.",
                    "inputs.referenceImages",
                    tid,
                )
            unknown = set(inputs) - {"referenceImages"}
            if unknown:
                raise _rw("unsupportedParameter", "Unknown input.", f"inputs.{min(unknown)}", tid)
            name, refs = "inputs.referenceImages", inputs.get("referenceImages")
        else:
            if "inputs" in task:  # the provider page: referenceImages at the top level
                raise _rw("unsupportedParameter", "Unsupported parameter inputs.", "inputs", tid)
            name, refs = "referenceImages", task.get("referenceImages")
        if not isinstance(refs, list) or len(refs) != 1:
            raise _rw("invalidReferenceImages", "Exactly 1 image.", name, tid)
        _data_uri_image(refs[0], name, tid)

    def _runware_ideogram(self, ide: dict[str, Any], model: str, tid: str) -> None:
        unknown = set(ide) - RUNWARE_IDEOGRAM
        if unknown:
            raise _rw(
                "unsupportedParameter", f"Unknown {sorted(unknown)[0]}.", "providerSettings", tid
            )
        v3 = model == "ideogram:4@2"
        speeds = ("TURBO", "DEFAULT", "QUALITY") if v3 else ("TURBO", "DEFAULT")
        if "renderingSpeed" in ide and ide["renderingSpeed"] not in speeds:
            raise _rw("invalidRenderingSpeed", "Bad renderingSpeed.", "renderingSpeed", tid)
        if "magicPrompt" in ide and ide["magicPrompt"] not in enums.MAGIC_PROMPTS:
            raise _rw("invalidMagicPrompt", "Bad magicPrompt.", "magicPrompt", tid)
        styles = ["AUTO", "GENERAL", "REALISTIC", "DESIGN", "FICTION"]
        if not v3:
            styles += ["RENDER_3D", "ANIME"]
        if "styleType" in ide and ide["styleType"] not in styles:
            raise _rw("invalidStyleType", "Bad styleType.", "styleType", tid)
        strength = ide.get("remixStrength", 50)
        if not isinstance(strength, int) or not 1 <= strength <= 100:
            raise _rw("invalidRemixStrength", "1-100.", "remixStrength", tid)
        if "stylePreset" in ide and (not v3 or ide["stylePreset"] not in enums.STYLE_PRESETS):
            raise _rw("invalidStylePreset", "Bad stylePreset.", "stylePreset", tid)
        if "styleCode" in ide:
            if (
                not v3
                or not isinstance(ide["styleCode"], str)
                or not STYLE_CODE.match(ide["styleCode"])
            ):
                raise _rw("invalidStyleCode", "Bad styleCode.", "styleCode", tid)
            if "styleType" in ide or "styleReferenceImages" in ide:
                raise _rw("conflict", "styleCode excludes styleType.", "styleCode", tid)
        if "colorPalette" in ide:
            raise _rw(
                "unsupportedParameter", "colorPalette is ideogram:3@1 only.", "colorPalette", tid
            )
        refs = ide.get("styleReferenceImages")
        if refs is not None:
            if not isinstance(refs, list) or not 1 <= len(refs) <= 4:
                raise _rw("invalidStyleReferenceImages", "1-4.", "styleReferenceImages", tid)
            for ref in refs:
                _data_uri_image(ref, "styleReferenceImages", tid)

    # --- task proxy ----------------------------------------------------------------------------
    async def proxy_submit(self, request: web.Request) -> web.StreamResponse:
        """Submit in the v3 form; answers a task envelope (or Ideogram's body in sync mode)."""
        return await self._proxy_submit(request, self._v3_reply)

    async def proxy_submit_legacy(self, request: web.Request) -> web.StreamResponse:
        """`POST /ideogram/remix`: the legacy body, Bearer; a task envelope (or sync body).
        Only the models and style types the reseller's page lists (V_1 … V_2_TURBO)."""
        return await self._proxy_submit(
            request,
            lambda r, rec: self._legacy_reply(
                r, rec, enums.TASK_LEGACY_MODELS, enums.TASK_LEGACY_STYLE_TYPES
            ),
        )

    async def _proxy_submit(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        return await self._answer(
            request, "bearer", lambda r, rec: self._queued(reply(r, rec)), accept_json=True
        )

    def _queued(self, body: dict[str, Any]) -> dict[str, Any]:
        """A task envelope for a finished body (or the body itself in sync mode)."""
        if self.proxy_mode == "sync":
            return body
        task_id = "task_" + uuid.uuid4().hex[:16]
        self.tasks[task_id] = {"polls": 0, "body": body}
        now = int(time.time() * 1000)
        return {
            "code": 0,
            "message": "SUCCEED",
            "request_id": uuid.uuid4().hex,
            "data": {
                "task_id": task_id,
                "task_status": "submitted",
                "created_at": now,
                "updated_at": now,
            },
        }

    async def proxy_query(self, request: web.Request) -> web.StreamResponse:
        """`GET /kling/v1/images/generations/{task_id}`: processing for task_polls polls, then
        the outcome."""
        await self._record(request)
        self._auth(request, "bearer")
        _require_accept_json(request)
        fault = await self._fault("poll")
        if fault is not None:
            return fault
        task = self.tasks.get(request.match_info["task_id"])
        if task is None:
            return web.json_response({"code": 1201, "message": "task not found"}, status=404)
        task["polls"] += 1
        data: dict[str, Any] = {
            "task_id": request.match_info["task_id"],
            "created_at": 1,
            "updated_at": 2,
            "task_status_msg": "",
        }
        if self.task_outcome == "never" or task["polls"] <= self.task_polls:
            data["task_status"] = "processing"
        elif self.task_outcome == "failed":
            data["task_status"] = "failed"
            data["task_status_msg"] = "Failure to pass the risk control system"
        else:
            data["task_status"] = "succeed"
            data["task_result"] = {
                "images": [
                    {"index": i, "url": item["url"]} for i, item in enumerate(task["body"]["data"])
                ]
            }
        return web.json_response({"code": 0, "message": "SUCCEED", "data": data})

    # --- downloads -----------------------------------------------------------------------------
    async def image(self, request: web.Request) -> web.StreamResponse:
        """A signed result image; 403 once `exp` has passed or when the signature is wrong."""
        await self._record(request)
        name = request.match_info["name"]
        try:
            exp = int(request.query.get("exp", ""))
        except ValueError:
            return web.json_response({"error": "bad exp"}, status=403)
        expected = hmac.new(self._secret, f"{name}:{exp}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.query.get("sig", "")):
            return web.json_response({"error": "bad signature"}, status=403)
        if exp < time.time():
            return web.json_response({"error": "link expired"}, status=403)
        if name not in self._images:
            return web.json_response({"error": "not found"}, status=404)
        data, fmt = self._images[name]
        return web.Response(body=data, content_type="image/png" if fmt == "PNG" else "image/jpeg")

    async def dl_slow(self, request: web.Request) -> web.StreamResponse:
        """Slow-loris: a PNG header, then one byte per slow_delay seconds, forever."""
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        await resp.prepare(request)
        await resp.write(PNG_MAGIC)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.slow_delay)
            try:
                await resp.write(b"\0")
            except (ConnectionError, RuntimeError):
                break
        return resp

    async def dl_huge(self, request: web.Request) -> web.StreamResponse:
        """A PNG-looking body of big_size bytes, with Content-Length."""
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.content_length = self.big_size
        await resp.prepare(request)
        await self._stream_zeros(resp, self.big_size)
        return resp

    async def dl_huge_nolen(self, request: web.Request) -> web.StreamResponse:
        """The same, chunked, without Content-Length."""
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await self._stream_zeros(resp, self.big_size)
        return resp

    async def _stream_zeros(self, resp: web.StreamResponse, size: int) -> None:
        sent = 0
        chunk = PNG_MAGIC + b"\0" * (65536 - len(PNG_MAGIC))
        try:
            while sent < size and not self._stop.is_set():
                piece = chunk[: size - sent]
                await resp.write(piece)
                sent += len(piece)
                chunk = b"\0" * 65536
        except (ConnectionError, RuntimeError):
            pass

    async def dl_gzip_bomb(self, request: web.Request) -> web.StreamResponse:
        """A small gzip body that inflates to big_size bytes; Content-Length is the small size."""
        raw = PNG_MAGIC + b"\0" * (self.big_size - len(PNG_MAGIC))
        packed = gzip.compress(raw, compresslevel=9)
        return web.Response(
            body=packed,
            headers={"Content-Type": "image/png", "Content-Encoding": "gzip"},
        )

    async def dl_redirect(self, request: web.Request) -> web.StreamResponse:
        """A 302 to the `to` query parameter."""
        raise web.HTTPFound(request.query["to"])

    async def dl_notimage(self, request: web.Request) -> web.StreamResponse:
        """An HTML page where an image was promised."""
        return web.Response(text="<html><body>not an image</body></html>", content_type="text/html")

    # --- control (for a fake running in another process) ---------------------------------------
    async def c_configure(self, request: web.Request) -> web.StreamResponse:
        """Set knobs: image_mode, unsafe (list), url_ttl, proxy_mode, task_polls, task_outcome…"""
        body = await request.json()
        for key, value in body.items():
            if key.startswith("_") or not hasattr(self, key) or callable(getattr(self, key)):
                return web.json_response({"error": f"unknown knob {key}"}, status=400)
            setattr(self, key, set(value) if key in ("unsafe", "damaged") else value)
        return web.json_response({"ok": True})

    async def c_fault(self, request: web.Request) -> web.StreamResponse:
        """Queue a fault: {kind, times, retry_after, target}."""
        body = await request.json()
        self.fail_next(**body)
        return web.json_response({"ok": True})

    async def c_requests(self, request: web.Request) -> web.StreamResponse:
        """Every recorded request, file bytes summarised."""
        return web.json_response(
            {"requests": [r.summary() for r in self.requests], "hits": self.hits}
        )

    async def c_reset(self, request: web.Request) -> web.StreamResponse:
        """Forget requests and faults; restore default knobs."""
        fresh = FakeRemix()
        for key in ("requests", "hits", "faults", "image_mode", "unsafe", "damaged", "url_ttl",
                    "proxy_mode", "task_polls", "task_outcome", "tasks", "inflight_limit",
                    "max_inflight_stated", "peak_inflight", "runware_image_in"):  # fmt: skip
            setattr(self, key, getattr(fresh, key))
        return web.json_response({"ok": True})


# --- validation helpers ------------------------------------------------------------------------
def _images_asked(rec: Recorded) -> int:
    """How many images a recorded API call asks for (v3 form, legacy JSON part, Runware)."""
    try:
        if rec.field("num_images"):
            return max(1, int(rec.field("num_images") or 1))
        legacy = rec.field("image_request")
        if legacy:
            return max(1, int(json.loads(legacy).get("num_images") or 1))
        if isinstance(rec.json, list) and rec.json and isinstance(rec.json[0], dict):
            return max(1, int(rec.json[0].get("numberResults") or 1))
    except (TypeError, ValueError):
        return 1
    return 1


def _quote(url: str) -> str:
    from urllib.parse import quote

    return quote(url, safe="")


def _require(rec: Recorded, *, fields: tuple[str, ...], files: tuple[str, ...]) -> None:
    """Every missing required part, named in one 400 (as a body sent to the wrong path gets)."""
    missing = [f"{name}: required field is missing" for name in fields if not rec.field(name)]
    missing += [
        f"{name}: required file part '{name}' is missing" for name in files if name not in rec.files
    ]
    if missing:
        raise _bad("; ".join(missing))


def _require_accept_json(request: web.Request) -> None:
    """The task-proxy reseller's header table: "Accept string Required application/json"
    (aiohttp's own default, `*/*`, does not name it)."""
    accepted = {
        r.split(";", 1)[0].strip().lower() for r in request.headers.get("Accept", "").split(",")
    }
    if "application/json" not in accepted:
        raise Reject(406, {"code": 406, "message": "Accept: application/json is required."})


def _pixel_size(data: bytes) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        raise _bad("image_file could not be decoded.") from None


def _check_mask(part: FilePart, size: tuple[int, int]) -> None:
    """Ideogram's masks: JPEG/PNG/WebP, the image's width and height, black and white, with
    something black (an all-white mask asks for no change)."""
    _check_file("mask", part)
    with Image.open(io.BytesIO(part.data)) as im:
        if im.size != size:
            raise _bad(
                f"mask must be the same size as image_file ({size[0]}x{size[1]}), "
                f"not {im.size[0]}x{im.size[1]}."
            )
        levels = {v for v, count in enumerate(im.convert("L").histogram()) if count}
    if not levels <= {0, 255}:
        raise _bad("mask must be a black and white image.")
    if 0 not in levels:
        raise _bad("mask has no black area to edit.")


def _check_file(name: str, part: FilePart) -> None:
    if part.format not in ("JPEG", "PNG", "WEBP"):
        raise _bad(f"{name} must be a JPEG, PNG or WebP image.")
    if len(part.data) > MAX_IMAGE:
        raise _bad(f"{name} is larger than 10MB.")


def _int_field(rec: Recorded, name: str, lo: int, hi: int) -> int | None:
    raw = rec.field(name)
    if raw is None:
        return None
    if not re.fullmatch(r"-?\d+", raw):
        raise _bad(f"{name} must be an integer.")
    value = int(raw)
    if not lo <= value <= hi:
        raise _bad(f"{name} must be between {lo} and {hi}.")
    return value


def _int_value(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _bad(f"{name} must be an integer between {lo} and {hi}.")
    return value


def _enum(rec: Recorded, name: str, allowed: tuple[str, ...]) -> None:
    value = rec.field(name)
    if value is not None and value not in allowed:
        raise _bad(f"Invalid {name} {value!r}.")


def _check_palette(text: str) -> None:
    try:
        palette = json.loads(text)
    except ValueError:
        raise _bad("color_palette is not valid JSON.") from None
    if not isinstance(palette, dict) or len(palette) != 1:
        raise _bad("color_palette must have exactly one of name or members.")
    if "name" in palette:
        if palette["name"] not in enums.PALETTE_PRESETS:
            raise _bad("Invalid color palette name.")
        return
    members = palette.get("members")
    if not isinstance(members, list) or not 1 <= len(members) <= 8:
        raise _bad("color_palette members must be 1 to 8 colours.")
    for m in members:
        if not isinstance(m, dict) or set(m) - {"color_hex", "color_weight"}:
            raise _bad("Invalid color palette member.")
        if not isinstance(m.get("color_hex"), str) or not HEX_COLOR.match(m["color_hex"]):
            raise _bad("Invalid color_hex.")
        w = m.get("color_weight")
        if w is not None and (not isinstance(w, int | float) or not 0.05 <= w <= 1.0):
            raise _bad("color_weight must be between 0.05 and 1.0.")


def _resolution_for(aspect: str, allowed: tuple[str, ...]) -> str:
    w, h = (int(x) for x in aspect.split("x"))
    target = math.log(w / h)

    def key(size: str) -> tuple[float, int]:
        sw, sh = (int(x) for x in size.split("x"))
        return (abs(math.log(sw / sh) - target), -(sw * sh))

    return min(allowed, key=key)


def _rw(code: str, message: str, parameter: str | None, task_uuid: Any = None) -> Reject:
    err: dict[str, Any] = {"code": code, "message": message, "taskType": "imageInference"}
    if parameter:
        err["parameter"] = parameter
    if task_uuid:
        err["taskUUID"] = task_uuid
    return Reject(400, {"errors": [err]})


def _data_uri_image(value: Any, name: str, tid: Any) -> None:
    if not isinstance(value, str) or not value.startswith("data:image/") or ";base64," not in value:
        raise _rw("invalidImage", f"{name} must be an image data URI here.", name, tid)
    try:
        data = base64.b64decode(value.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise _rw("invalidImage", f"{name} is not valid base64.", name, tid) from None
    if sniff_format(data) not in ("JPEG", "PNG", "WEBP"):
        raise _rw("invalidImage", f"{name} is not a PNG, JPG or WEBP image.", name, tid)


# --- running it --------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def running_fake(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[FakeRemix]:
    """Start the fake on a free port of 127.0.0.1 for the duration of the block."""
    fake = FakeRemix()
    runner = web.AppRunner(fake.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://{host}:{bound}"
    try:
        yield fake
    finally:
        fake.stop()
        await runner.cleanup()


__all__ = ["API_KEY", "FakeRemix", "Fault", "Recorded", "running_fake"]

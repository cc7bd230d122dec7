"""Shared HTTP for the backends: auth headers, the paid POST, error mapping and 429 retries."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from typing import Any

import aiohttp

from bot.errors import (
    InvalidImage,
    InvalidRequest,
    RemixAuthError,
    RemixOutcomeUnknown,
    RemixRateLimited,
    RemixRejected,
    RemixUnavailable,
)
from bot.media import EncodedImage
from bot.remix import enums
from bot.remix.backends.base import OnSubmitted, RemixResult, ResultImage
from bot.remix.request import RemixRequest
from bot.secrets import redact
from bot.settings import Settings

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 64 * 1024 * 1024  # inline base64 results can be large; anything past is broken
MAX_REASON_CHARS = 200
CONNECT_RETRIES = 2  # a refused connection never reached the backend, so retrying is free
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
# A 429 is never retried sooner than this, nor more than this many times, whatever Retry-After
# says (a "Retry-After: 0" must not turn the upload of a 10 MB form into a hot loop).
MIN_429_WAIT = 0.5
MAX_429_RETRIES = 5
# Longest Retry-After honoured; a larger (or absurd) value is clamped, so one reply cannot pause
# the whole queue for days.
MAX_RETRY_AFTER = 300.0
# JSON bodies larger than this are parsed off the event loop.
PARSE_OFF_LOOP_BYTES = 256 * 1024


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return _clamp_wait(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now_ts = time.time() if now is None else now
    return _clamp_wait(when.timestamp() - now_ts)


def _clamp_wait(seconds: float) -> float | None:
    """A usable wait in [0, MAX_RETRY_AFTER], or None for nan/inf."""
    if not math.isfinite(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def full_jitter(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return random.uniform(0, min(cap, base * (2**attempt)))


def inflight_limit(body: bytes | str | None) -> int | None:
    """For a 429 that says the in-flight limit was hit: the limit it states (0 when it states
    none); None for any other 429 (Ideogram: `reject_reason: inflight_limit`,
    `max_inflight_requests`)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        parsed = json.loads(text) if text and len(text) < 10_000 else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    stated = parsed.get("max_inflight_requests")
    if parsed.get("reject_reason") != "inflight_limit" and stated is None:
        return None
    if isinstance(stated, int) and not isinstance(stated, bool) and 0 < stated <= 1000:
        return stated
    return 0


def backend_reason(body: bytes | str | None, status: int) -> str:
    """The backend's own reason (`error`/`message`/`errors[0].message`; a 402's `reject_reason`
    beside it), redacted and trimmed."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    reason = ""
    try:
        parsed = json.loads(text) if text else None
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        for key in ("error", "message", "detail", "msg", "task_status_msg", "reject_reason"):
            value = parsed.get(key)
            if isinstance(value, str) and value.strip():
                reason = value
                break
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                reason = value["message"]
                break
        errors = parsed.get("errors")
        if not reason and isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            reason = str(first.get("message") or first.get("code") or "").rstrip(". ")
            if first.get("parameter"):
                reason = f"{reason} (parameter {first['parameter']})"
    elif parsed is None and text and "<" not in text[:50]:
        reason = text  # short plain-text bodies are often the reason; HTML pages are not
    if status == 402 and isinstance(parsed, dict):
        # Ideogram's 402 says which limit in `reject_reason` (insufficient_funds, daily_limit);
        # the admin needs it beside the message to know what to fix.
        why = parsed.get("reject_reason")
        if isinstance(why, str) and why.strip() and why.strip() != reason:
            reason = f"{reason.rstrip('. ')} ({why.strip()})" if reason else why
    reason = " ".join(redact(reason).split())
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return reason.rstrip(". ") or f"HTTP {status}"


def check_sizes(
    image: EncodedImage, refs: Sequence[EncodedImage], mask: EncodedImage | None = None
) -> None:
    """Refuse images over the backend's documented limits before anything is sent."""
    for what, item in (("image", image), ("mask", mask)):
        if item is not None and len(item.data) > enums.MAX_IMAGE_BYTES:
            raise InvalidImage(
                f"The {what} must be at most {enums.MAX_IMAGE_BYTES // 1_000_000} MB for the "
                f"backend, not {len(item.data) / 1_000_000:.1f} MB."
            )
    total = sum(len(r.data) for r in refs)
    if total > enums.MAX_REFS_BYTES:
        raise InvalidRequest(
            f"style reference images must be at most {enums.MAX_REFS_BYTES // 1_000_000} MB "
            f"together, not {total / 1_000_000:.1f} MB."
        )


def mask_refused(name: str) -> InvalidRequest:
    """The refusal of a mask on a backend that cannot edit under one."""
    return InvalidRequest(
        f"A mask cannot be used on the {name} backend (only ideogram-edit edits under a mask); "
        "leave the mask out."
    )


def check_count(items: Sequence[Any], name: str) -> None:
    """Refuse a reply listing more images than any remix can make (a broken or hostile reply
    must not fan out into thousands of downloads)."""
    if len(items) > enums.MAX_NUM_IMAGES:
        raise RemixOutcomeUnknown(
            f"The {name} backend's reply listed {len(items)} images, more than the "
            f"{enums.MAX_NUM_IMAGES} a remix can make; it was not used."
        )


def parse_ideogram_images(body: Any) -> list[ResultImage]:
    """Images from Ideogram's synchronous envelope `{created, data: [...]}` (v3 and legacy)."""
    # A 2xx means the remix ran and was billed (Ideogram bills on completion), so a reply we
    # cannot read is "outcome unknown", never "not charged, try again".
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise RemixOutcomeUnknown(
            "The backend's reply had no `data` list of images; it may have run, so it was not "
            "resubmitted."
        )
    check_count(body["data"], "remix")
    images = []
    for item in body["data"]:
        if not isinstance(item, dict):
            raise RemixOutcomeUnknown(
                "The backend's reply listed an image that is not an object; it may have run, so "
                "it was not resubmitted."
            )
        url = item.get("url") or None
        safe = item.get("is_image_safe", True) is not False
        seed = item.get("seed")
        images.append(
            ResultImage(
                url=url if isinstance(url, str) else None,
                seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                resolution=item.get("resolution")
                if isinstance(item.get("resolution"), str)
                else None,
                is_safe=safe and isinstance(url, str),
                prompt=item.get("prompt") if isinstance(item.get("prompt"), str) else None,
            )
        )
    if not images:
        raise RemixOutcomeUnknown(
            "The backend answered with an empty list of images; it may have run (and been "
            "billed), so it was not resubmitted."
        )
    return images


async def _read_capped(resp: aiohttp.ClientResponse, cap: int = MAX_REPLY_BYTES) -> bytes:
    """Read a reply body, refusing one larger than `cap` (a broken or hostile backend). A success
    too large to read is outcome-unknown: the work ran and may be billed."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > cap:
            message = f"The backend's reply was larger than {cap // 1048576} MiB."
            if 200 <= resp.status < 300:
                raise RemixOutcomeUnknown(f"{message} It may have run, so it was not resent.")
            raise RemixUnavailable(message)
        chunks.append(chunk)
    return b"".join(chunks)


class HttpBackend:
    """Base of the HTTP backends: holds settings and the API session, sends the paid POST."""

    name = "http"
    resumable = False  # a synchronous call: nothing to poll after a restart
    takes_mask = False
    # The ratios this format can send; intake auto-picks only among these.
    aspect_ratios: tuple[str, ...] = enums.ASPECT_RATIOS
    # The models REMIXBOT_MODEL (and a request's model) may name; empty: the format has no model.
    models: tuple[str, ...] = ()

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.session = session
        self._sleep = sleep

    @classmethod
    def ratios_for(cls, settings: Settings) -> tuple[str, ...]:
        """The ratios intake may crop to for this backend under `settings` (known before any
        session exists, so the terminal can prepare its input first)."""
        return cls.aspect_ratios

    @classmethod
    def models_for(cls, settings: Settings) -> tuple[str, ...]:
        """The models this backend sends under `settings` (empty: it takes none, and
        REMIXBOT_MODEL is ignored); checked at start by `model_setting`."""
        return cls.models

    @classmethod
    def where_for(cls, settings: Settings) -> str:
        """How messages name this backend under `settings`."""
        return f"the {cls.name} backend"

    # --- helpers -------------------------------------------------------------------------------
    def check(self, request: RemixRequest, refs_count: int) -> None:
        """Refuse a mask this backend cannot take, then the options it cannot express."""
        if request.has_mask and not self.takes_mask:
            raise mask_refused(self.name)
        self.check_options(request, refs_count)

    def check_options(self, request: RemixRequest, refs_count: int) -> None:
        """Refuse options this backend cannot express (each backend says which)."""
        raise NotImplementedError

    async def remix(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        *,
        mask: EncodedImage | None = None,
        on_submitted: OnSubmitted | None = None,
    ) -> RemixResult:
        """Check the request, the mask and the sizes before any money is spent, then send it."""
        self.check(request, len(refs))
        if mask is not None and not self.takes_mask:
            raise mask_refused(self.name)
        if request.has_mask and mask is None:
            # The member drew a mask: editing the whole image instead would spend their quota
            # on something they did not ask for.
            raise InvalidRequest(
                "The mask of this remix is no longer available; send the image and its mask again."
            )
        if mask is not None and (mask.width, mask.height) != (image.width, image.height):
            # The API reads the mask pixel for pixel against the image.
            raise InvalidImage(
                f"The mask must be exactly the image's size, {image.width}x{image.height} "
                f"pixels, not {mask.width}x{mask.height}."
            )
        check_sizes(image, refs, mask)
        return await self._submit(request, image, refs, mask, on_submitted)

    async def _submit(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        mask: EncodedImage | None,
        on_submitted: OnSubmitted | None,
    ) -> RemixResult:
        """Send one checked request in this backend's wire format."""
        raise NotImplementedError

    def url(self, path: str) -> str:
        """The absolute URL of a path under the configured base URL."""
        return self.settings.backend_url.rstrip("/") + path

    def auth_headers(self) -> dict[str, str]:
        """`Api-Key: KEY` or `Authorization: Bearer KEY`, per settings.auth_scheme."""
        key = self.settings.require_api_key()
        if self.settings.auth_scheme == "bearer":
            return {"Authorization": f"Bearer {key}"}
        return {"Api-Key": key}

    def api_headers(self) -> dict[str, str]:
        """The headers of every API call: the key, and `Accept: application/json`.

        The task-proxy reseller marks Accept required; every backend answers JSON, so one set
        of headers serves them all.
        """
        return {**self.auth_headers(), "Accept": "application/json"}

    def timeout(self) -> aiohttp.ClientTimeout:
        """Timeout for the paid call: the whole budget, and a short connect."""
        total = self.settings.backend_timeout
        return aiohttp.ClientTimeout(total=total, sock_connect=min(10.0, total))

    # --- the paid POST -------------------------------------------------------------------------
    async def post(
        self,
        path: str,
        make_body: Callable[[], dict[str, Any]],
        *,
        what: str = "remix",
    ) -> Any:
        """POST once (429 and refused connections retried; nothing that may have run), parse JSON.

        `make_body` returns fresh `data=`/`json=` keyword arguments per attempt (a FormData
        cannot be sent twice).
        """
        url = self.url(path)
        budget_end = time.monotonic() + self.settings.backend_timeout
        attempt = 0
        refused = 0
        while True:
            try:
                status, headers, body = await self._send(url, make_body())
            except _Refused as exc:
                refused += 1
                if refused > CONNECT_RETRIES:
                    raise RemixUnavailable(
                        f"The {self.name} backend could not be reached ({exc}); try again later."
                    ) from None
                await self._sleep(full_jitter(refused - 1, base=0.2, cap=2.0))
                continue
            if status == 429:
                retry_after = parse_retry_after(headers.get("Retry-After"))
                limited = inflight_limit(body)
                if limited is not None:
                    # The backend's in-flight limit: the caller's budget learns from it and
                    # tries again when a place is free (bot/jobs/budget.py), not this loop.
                    raise RemixRateLimited(
                        f"The {self.name} backend is at its in-flight limit; try again later.",
                        retry_after=retry_after,
                        limit=limited or None,
                        inflight=True,
                    )
                wait = max(retry_after or 0.0, full_jitter(attempt), MIN_429_WAIT)
                attempt += 1
                if attempt > MAX_429_RETRIES or time.monotonic() + wait > budget_end:
                    reason = backend_reason(body, status)
                    after = f" in {wait:.0f} seconds" if retry_after is not None else " later"
                    raise RemixRateLimited(
                        f"The {self.name} backend is busy ({reason}); try again{after}.",
                        retry_after=wait,
                    )
                log.info(
                    "%s: 429 from the backend, waiting %.1fs (attempt %d)", what, wait, attempt
                )
                await self._sleep(wait)
                continue
            return await self._interpret(status, body)

    async def _send(self, url: str, body_kwargs: dict[str, Any]) -> tuple[int, Any, bytes]:
        """One POST; maps transport failures to refused (not sent) or outcome unknown (sent)."""
        try:
            async with self.session.post(
                url,
                headers=self.api_headers(),
                timeout=self.timeout(),
                allow_redirects=False,  # never re-send a paid call, nor the key, elsewhere
                **body_kwargs,
            ) as resp:
                body = await _read_capped(resp)
                return resp.status, resp.headers, body
        except aiohttp.ConnectionTimeoutError as exc:
            raise _Refused("connection timed out") from exc
        except aiohttp.ClientConnectorError as exc:
            raise _Refused(f"connection failed: {exc.os_error.strerror or 'refused'}") from exc
        except TimeoutError as exc:
            raise RemixOutcomeUnknown(
                f"The {self.name} backend did not answer within "
                f"{self.settings.backend_timeout:g} seconds; it may still have run (and billed) "
                "the remix, so it was not resubmitted."
            ) from exc
        except aiohttp.ClientError as exc:
            raise RemixOutcomeUnknown(
                f"The connection to the {self.name} backend broke after the request was sent "
                f"({type(exc).__name__}); it may have run, so it was not resubmitted."
            ) from exc

    async def _interpret(self, status: int, body: bytes) -> Any:
        """Map a status and body to parsed JSON or the right RemixError."""
        if 200 <= status < 300:
            try:
                return await parse_json(body)
            except (ValueError, RecursionError):
                raise RemixOutcomeUnknown(
                    f"The {self.name} backend's reply was not valid JSON (HTTP {status}); it may "
                    "have run, so it was not resubmitted."
                ) from None
        raise map_status(self.name, status, body)


class SyncFormBackend(HttpBackend):
    """A backend whose one multipart POST to settings.remix_path answers with Ideogram's
    synchronous body; each subclass only says how its form is built."""

    def form(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        mask: EncodedImage | None,
    ) -> aiohttp.FormData:
        """A fresh multipart body for one attempt (a FormData cannot be sent twice)."""
        raise NotImplementedError

    async def _submit(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        mask: EncodedImage | None,
        on_submitted: OnSubmitted | None,
    ) -> RemixResult:
        """One synchronous call; images come back in the reply."""
        body = await self.post(
            self.settings.remix_path, lambda: {"data": self.form(request, image, refs, mask)}
        )
        return RemixResult(images=parse_ideogram_images(body), backend=self.name)


async def parse_json(body: bytes) -> Any:
    """json.loads, off the event loop for large bodies (inline images can be megabytes)."""
    if len(body) > PARSE_OFF_LOOP_BYTES:
        return await asyncio.to_thread(json.loads, body)
    return json.loads(body)


# Gateway/proxy timeouts (Cloudflare's 524 included): the request reached the backend.
GATEWAY_TIMEOUTS = frozenset({502, 504, 524})


class _Refused(Exception):
    """The connection failed before the request left: safe to retry."""


def map_status(name: str, status: int, body: bytes | str | None) -> Exception:
    """The RemixError for a non-2xx status (429 included, for callers that do not retry)."""
    reason = backend_reason(body, status)
    if status == 402:
        return RemixAuthError(
            f"The {name} backend's account cannot pay for this remix (HTTP 402: {reason}); "
            "an admin must check the account's balance and limits."
        )
    if status in (401, 403):
        return RemixAuthError(
            f"The {name} backend refused the bot's API key (HTTP {status}: {reason}); "
            "an admin must check REMIXBOT_API_KEY and the account."
        )
    if status == 429:
        return RemixRateLimited(f"The {name} backend is busy ({reason}); try again later.")
    if 300 <= status < 400:
        return RemixUnavailable(
            f"The {name} backend answered with a redirect (HTTP {status}); check REMIXBOT_BACKEND_URL."
        )
    if status in GATEWAY_TIMEOUTS:
        # A proxy gave up waiting; the backend behind it may still run and bill the remix.
        return RemixOutcomeUnknown(
            f"The {name} backend's gateway timed out (HTTP {status}); the remix may still run, "
            "so it was not resubmitted."
        )
    if status >= 500:
        return RemixUnavailable(
            f"The {name} backend failed (HTTP {status}: {reason}); try again later."
        )
    if status == 408:
        return RemixUnavailable(f"The {name} backend timed out reading the request (HTTP 408).")
    return RemixRejected(
        f"The {name} backend rejected the request (HTTP {status}): {reason}.",
        safety=status == 422 or mentions_safety(reason),
    )


_SAFETY_WORDS = re.compile(r"safety|nsfw|prohibited|moderat|inappropriate", re.I)


def mentions_safety(reason: str) -> bool:
    """Whether a backend's refusal names its safety check (for backends without a 422)."""
    return bool(_SAFETY_WORDS.search(reason))

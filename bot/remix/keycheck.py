"""Is the backend key accepted? One request that costs nothing: a remix with no image.

Every backend checks the key before it reads the request (Ideogram, Runware and the resellers
document 401/403 for a missing or wrong key, 400/422 for a bad request, and bill only a remix
that runs). So a request that is complete except for its image tells the two apart without
spending anything: a refusal *for its content* (400, 422) means the key got through; 401/403
means it did not. docs/backends.md lists what each backend answers.

It sends exactly one request: no retries (a 429 is reported, not waited out), no redirects
(the key never goes to another host).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.remix.backends import make_backend
from bot.remix.backends.http import HttpBackend, backend_reason
from bot.settings import Settings

TIMEOUT = 20.0
PROBE_PROMPT = "remixbot check: this request has no image on purpose"


@dataclass(frozen=True)
class KeyVerdict:
    """Whether the key is accepted, and the sentence that says what the backend answered."""

    ok: bool
    sentence: str


def probe_request(settings: Settings) -> tuple[str, dict[str, Any]]:
    """(path, body keyword arguments) of the content-refused request for this backend."""
    if settings.backend == "runware":
        # A task with no model, prompt or image: Runware answers 400 naming a missing parameter.
        return settings.remix_path, {
            "json": [{"taskType": "imageInference", "taskUUID": str(uuid.uuid4())}]
        }
    path = settings.task_submit_path if settings.backend == "task-proxy" else settings.remix_path
    # Multipart, as a remix is: a FormData with only text fields would go URL-encoded, and the
    # backend would refuse the encoding instead of the missing image. (FormData's
    # default_to_multipart is newer than the aiohttp 3.10 the project allows.)
    form = aiohttp.MultipartWriter("form-data")
    part = form.append(PROBE_PROMPT)
    part.set_content_disposition("form-data", name="prompt")  # the image (required) is left out
    return path, {"data": form}


def verdict(name: str, status: int, body: bytes) -> KeyVerdict:
    """What one status means for the key."""
    reason = backend_reason(body, status)
    if status in (400, 422):
        return KeyVerdict(
            True,
            f"key accepted: {name} refused a request without an image for its content "
            f"(HTTP {status}: {reason}), as expected; nothing was charged",
        )
    if status in (401, 403):
        return KeyVerdict(
            False,
            f"{name} refused the key (HTTP {status}: {reason}); check REMIXBOT_API_KEY "
            "and REMIXBOT_AUTH_SCHEME",
        )
    if status == 402:
        return KeyVerdict(
            False,
            f"{name} accepted the key but the account cannot pay (HTTP 402: {reason}); "
            "check its balance",
        )
    if status == 404:
        return KeyVerdict(
            False,
            f"{name} has nothing at that address (HTTP 404); check REMIXBOT_BACKEND_URL and the path",
        )
    if status == 429:
        return KeyVerdict(False, f"{name} is busy (HTTP 429: {reason}); run the check again later")
    if 300 <= status < 400:
        return KeyVerdict(
            False, f"{name} answered with a redirect (HTTP {status}); check REMIXBOT_BACKEND_URL"
        )
    if 200 <= status < 300:
        return KeyVerdict(
            False,
            f"{name} accepted a request without an image (HTTP {status}); is "
            "REMIXBOT_BACKEND_URL a remix endpoint?",
        )
    return KeyVerdict(False, f"{name} failed (HTTP {status}: {reason}); try again later")


async def check_key(settings: Settings, session: aiohttp.ClientSession) -> KeyVerdict:
    """Send the content-refused request once and judge the key by the answer."""
    if not settings.needs_api_key:
        return KeyVerdict(True, f"the {settings.backend} backend runs here and needs no key")
    if not settings.api_key:
        return KeyVerdict(
            False,
            "REMIXBOT_API_KEY is not set; put the backend's API key in the environment or .env",
        )
    backend = make_backend(settings, session)
    assert isinstance(backend, HttpBackend)
    path, body = probe_request(settings)
    url = backend.url(path)
    try:
        async with session.post(
            url,
            headers=backend.api_headers(),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            allow_redirects=False,
            **body,
        ) as resp:
            data = await resp.content.read(64 * 1024)
            return verdict(backend.name, resp.status, data)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return KeyVerdict(
            False,
            f"{backend.name} could not be reached at {settings.backend_url} "
            f"({type(exc).__name__}); check REMIXBOT_BACKEND_URL and the network",
        )

"""Asynchronous task proxies: submit the v3 form or the legacy body, then poll
`{code, message, data: {...}}` (or take Ideogram's synchronous body when it comes back at once)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.errors import RemixOutcomeUnknown, RemixRejected
from bot.media import EncodedImage
from bot.remix import enums
from bot.remix.backends.base import OnSubmitted, RemixResult, ResultImage
from bot.remix.backends.http import (
    HttpBackend,
    _read_capped,
    backend_reason,
    check_count,
    full_jitter,
    mentions_safety,
    parse_ideogram_images,
    parse_retry_after,
)
from bot.remix.backends.ideogram_legacy import check_legacy, choose_model, legacy_form
from bot.remix.backends.ideogram_v3 import check_v3, v3_form
from bot.remix.request import RemixRequest
from bot.settings import Settings

log = logging.getLogger(__name__)

POLL_FIRST = 1.0  # seconds before the first poll; generation takes several seconds anyway
POLL_FACTOR = 1.5
POLL_CAP = 10.0
TERMINAL_OK = "succeed"
TERMINAL_FAILED = "failed"
# The submit paths the resellers document for each body (a trailing slash is ignored).
LEGACY_PATH_END = "/ideogram/remix"
V3_PATH_END = "/ideogram-v3/remix"


def task_format(settings: Settings) -> str:
    """`legacy` or `v3`: REMIXBOT_TASK_FORMAT, else what the submit path documents.

    A path ending in neither keeps the v3 form, which is what this backend always sent.
    """
    if settings.task_format:
        return settings.task_format
    path = settings.task_submit_path.rstrip("/")
    return "legacy" if path.endswith(LEGACY_PATH_END) else "v3"


class TaskProxyBackend(HttpBackend):
    """A reseller that queues an Ideogram remix as a task (Kling-style envelope) and is polled.

    The submit body is the v3 form or the legacy `image_request` + `image_file` pair, per
    :func:`task_format`; each is checked by the same rules as the backend that owns it.
    """

    name = "task-proxy"
    resumable = True  # the task id saved on the job is polled again after a restart
    poll_first = POLL_FIRST
    poll_cap = POLL_CAP

    @classmethod
    def ratios_for(cls, settings: Settings) -> tuple[str, ...]:
        """The legacy body has 11 aspect ratios, the v3 form all 15."""
        if task_format(settings) == "legacy":
            return enums.LEGACY_ASPECT_RATIOS
        return enums.ASPECT_RATIOS

    @classmethod
    def models_for(cls, settings: Settings) -> tuple[str, ...]:
        """The legacy body's models (the reseller's list); the v3 form has no model."""
        return enums.TASK_LEGACY_MODELS if task_format(settings) == "legacy" else ()

    @classmethod
    def where_for(cls, settings: Settings) -> str:
        """How messages name this backend and its body."""
        return f"the task-proxy backend ({task_format(settings)} body)"

    @property
    def format(self) -> str:
        """`legacy` or `v3`, the submit body."""
        return task_format(self.settings)

    @property
    def where(self) -> str:
        """How messages name this backend and its body."""
        return self.where_for(self.settings)

    def model_for(self, request: RemixRequest) -> str:
        """The legacy body's model: the request's override, else REMIXBOT_MODEL, else V_2; one
        of the models the reseller's page lists (V_1 … V_2_TURBO)."""
        return choose_model(
            self.where, request, self.settings.model, self.models_for(self.settings)
        )

    def check_options(self, request: RemixRequest, refs_count: int) -> None:
        """The rules of the body being sent: legacy (with its model, and the style types the
        reseller's page lists) or v3."""
        if self.format == "legacy":
            check_legacy(
                self.where,
                request,
                refs_count,
                self.model_for(request),
                enums.TASK_LEGACY_STYLE_TYPES,
            )
        else:
            check_v3(self.name, request, refs_count)

    def form(
        self, request: RemixRequest, image: EncodedImage, refs: Sequence[EncodedImage]
    ) -> aiohttp.FormData:
        """A fresh submit body (a FormData cannot be sent twice)."""
        if self.format == "legacy":
            return legacy_form(request, image, self.model_for(request))
        return v3_form(request, image, refs)

    async def _submit(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        mask: EncodedImage | None,
        on_submitted: OnSubmitted | None,
    ) -> RemixResult:
        """Submit once, hand the task id to `on_submitted`, then poll until done."""
        body = await self.post(
            self.settings.task_submit_path,
            lambda: {"data": self.form(request, image, refs)},
            what="task submit",
        )
        # Some proxies answer synchronously with Ideogram's own body instead of a task.
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            return RemixResult(images=parse_ideogram_images(body), backend=self.name)
        task_id = self._task_id(body)
        if on_submitted is not None:
            await on_submitted(task_id)
        return await self.resume(task_id)

    def _task_id(self, body: Any) -> str:
        """The task id of a submit reply, or the error it carries."""
        if not isinstance(body, dict):
            raise RemixOutcomeUnknown(
                "The task-proxy backend's submit reply was not a JSON object; the task may run, "
                "so it was not resubmitted."
            )
        code = body.get("code")
        if code not in (0, "0", 200, None):
            reason = backend_reason(json.dumps(body), 200)
            raise RemixRejected(
                f"The task-proxy backend refused the task (code {code}): {reason}.",
                safety=mentions_safety(reason),
            )
        data = body.get("data")
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str | int) or not str(task_id):
            raise RemixOutcomeUnknown(
                "The task-proxy backend's submit reply had no data.task_id; the task may run, so "
                "it was not resubmitted."
            )
        if isinstance(data, dict) and data.get("task_status") == TERMINAL_FAILED:
            failure = self._failure(data)
            raise RemixRejected(
                f"The task-proxy backend failed the task at once: {failure}.",
                safety=mentions_safety(failure),
            )
        return str(task_id)

    async def resume(self, task_id: str) -> RemixResult:
        """Poll a submitted task until `succeed` or `failed` within settings.task_max_wait."""
        url = self.url(self.settings.task_query_path.format(task_id=quote(task_id, safe="")))
        deadline = time.monotonic() + self.settings.task_max_wait
        delay = self.poll_first
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self._sleep(min(delay, remaining))
            attempt += 1
            delay = min(self.poll_cap, delay * POLL_FACTOR)
            try:
                data = await self._poll(url, deadline)
            except _PollRetry as exc:
                log.info("task %s: poll failed transiently (%s)", task_id, exc)
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                else:
                    delay = max(
                        delay, full_jitter(attempt, base=self.poll_first, cap=self.poll_cap)
                    )
                continue
            status = data.get("task_status")
            if status == TERMINAL_OK:
                return RemixResult(
                    images=self._images(data), backend=self.name, backend_ref=task_id
                )
            if status == TERMINAL_FAILED:
                failure = self._failure(data)
                raise RemixRejected(
                    f"The task-proxy backend failed the task: {failure}.",
                    safety=mentions_safety(failure),
                )
        raise RemixOutcomeUnknown(
            f"Task {task_id} did not finish within {self.settings.task_max_wait:g} seconds; it may "
            "still run and be billed, so it was not resubmitted."
        )

    async def _poll(self, url: str, deadline: float) -> dict[str, Any]:
        """One GET of the task; transient trouble raises _PollRetry, the rest a RemixError."""
        left = max(0.5, deadline - time.monotonic())
        timeout = aiohttp.ClientTimeout(total=min(left, 30.0), sock_connect=min(left, 10.0))
        try:
            async with self.session.get(
                url, headers=self.api_headers(), timeout=timeout, allow_redirects=False
            ) as resp:
                body = await _read_capped(resp)
                status, headers = resp.status, resp.headers
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _PollRetry(type(exc).__name__) from exc
        if status == 429:
            raise _PollRetry("HTTP 429", parse_retry_after(headers.get("Retry-After")))
        if status >= 500:
            raise _PollRetry(f"HTTP {status}")
        if status == 404:
            raise RemixOutcomeUnknown(
                "The task-proxy backend no longer knows the task (HTTP 404); it may have run."
            )
        if status in (401, 403):
            # The key was refused mid-task (revoked, rotated, the account suspended): only the
            # admin can act, and the task may still run and be billed, so the outcome is unknown.
            task_id = task_id_of(url)
            log.warning(
                "task %s: the task-proxy backend refused the API key (HTTP %s) while polling; "
                "outcome unknown, check REMIXBOT_API_KEY",
                task_id,
                status,
            )
            raise RemixOutcomeUnknown(
                f"The task-proxy backend refused the bot's API key (HTTP {status}: "
                f"{backend_reason(body, status)}) while task {task_id} was being polled; it may "
                "still run and be billed, so it was not resubmitted; an admin must check "
                "REMIXBOT_API_KEY."
            )
        if status != 200:
            # The task was accepted and may run (and be billed) whatever this query says: never
            # "rejected", or the member would be refunded and resubmit a second paid remix.
            raise RemixOutcomeUnknown(
                f"The task-proxy backend would not report on task {task_id_of(url)} "
                f"(HTTP {status}: {backend_reason(body, status)}); it may still run, so it was "
                "not resubmitted."
            )
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            raise _PollRetry("reply was not JSON") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("data"), dict):
            raise _PollRetry("reply had no data object")
        if parsed.get("code") not in (0, "0", 200, None):
            # After submit the task may run (and be billed) whatever a query says: never
            # "rejected". A still-running status is worth asking again; anything else is unknown.
            if parsed["data"].get("task_status") in (TERMINAL_OK, TERMINAL_FAILED):
                raise RemixOutcomeUnknown(
                    f"The task-proxy backend reported an error for task {task_id_of(url)} (code "
                    f"{parsed['code']}): {backend_reason(body, status)}; it may have run."
                )
            raise _PollRetry(f"code {parsed['code']}")
        return parsed["data"]

    @staticmethod
    def _failure(data: dict[str, Any]) -> str:
        """The failure reason of a task, redacted and trimmed."""
        return backend_reason(json.dumps({"message": data.get("task_status_msg") or ""}), 200)

    @staticmethod
    def _images(data: dict[str, Any]) -> list[ResultImage]:
        """Images from `data.task_result.images[].url` (unsafe or missing URLs are withheld)."""
        result = data.get("task_result")
        items = result.get("images") if isinstance(result, dict) else None
        if isinstance(items, list):
            check_count(items, "task-proxy")
        if not isinstance(items, list) or not items:
            raise RemixOutcomeUnknown(
                "The task-proxy backend reported success without task_result.images; the task "
                "ran, so it was not resubmitted."
            )
        images = []
        for item in items:
            url = item.get("url") if isinstance(item, dict) else None
            url = url if isinstance(url, str) and url else None
            seed = item.get("seed") if isinstance(item, dict) else None
            images.append(
                ResultImage(
                    url=url,
                    seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                    resolution=item.get("resolution") if isinstance(item, dict) else None,
                    is_safe=url is not None and item.get("is_image_safe", True) is not False,
                    prompt=item.get("prompt") if isinstance(item, dict) else None,
                )
            )
        return images


def task_id_of(url: str) -> str:
    """The last path segment of a task query URL (for messages)."""
    return url.rstrip("/").rsplit("/", 1)[-1][:64]


class _PollRetry(Exception):
    """A poll failed in a way worth trying again before the deadline."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after

"""Backends and downloads against hostile or broken replies: bounded, and never 'it never ran'
when it may have."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.errors import DownloadError, RemixOutcomeUnknown, RemixRateLimited
from bot.jobs import Scheduler
from bot.remix.backends import TaskProxyBackend, make_backend
from bot.remix.backends.base import ResultImage
from bot.remix.backends.http import MAX_429_RETRIES, MAX_RETRY_AFTER, parse_retry_after
from bot.remix.download import (
    DownloadPolicy,
    address_allowed,
    download_all,
    make_download_session,
)
from bot.remix.request import RemixRequest
from tests.fakeremix import FakeRemix
from tests.fakeremix.helpers import encoded, fake_settings


async def test_retry_after_zero_does_not_become_a_hot_loop(fake: FakeRemix) -> None:
    fake.fail_next("429_rate", times=1000, retry_after="0")
    settings = fake_settings(fake, REMIXBOT_BACKEND_TIMEOUT="60")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RemixRateLimited):
            await make_backend(settings, session).remix(RemixRequest(prompt="x"), encoded(), [])
    assert len(fake.api_requests()) == 1 + MAX_429_RETRIES  # bounded retries, not thousands


@pytest.mark.parametrize("value", ["31536000", "1e400", "nan", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_absurd_retry_after_is_clamped_or_ignored(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= MAX_RETRY_AFTER)


async def test_scheduler_pause_is_bounded() -> None:
    scheduler = Scheduler()
    scheduler.pause(float("inf"))
    assert scheduler._pause_left() <= 300.0


async def _serve(body: bytes) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/ideogram-v3/remix", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (json.dumps({"data": [{}] * 100_000}).encode(), RemixOutcomeUnknown),
        (b"[" * 200_000 + b"]" * 200_000, RemixOutcomeUnknown),
    ],
    ids=["100k-images", "deeply-nested"],
)
async def test_hostile_replies_end_in_a_remix_error(body: bytes, error: type) -> None:
    runner, url = await _serve(body)
    try:
        from bot.settings import load_settings

        settings = load_settings(
            {"REMIXBOT_BACKEND_URL": url, "REMIXBOT_API_KEY": "k"}, dotenv=None
        )
        async with aiohttp.ClientSession() as session:
            with pytest.raises(error):
                await make_backend(settings, session).remix(RemixRequest(prompt="x"), encoded(), [])
    finally:
        await runner.cleanup()


async def test_task_proxy_poll_refusal_after_submit_is_outcome_unknown(fake: FakeRemix) -> None:
    fake.fail_next("400", times=1, target="poll")
    settings = fake_settings(fake, "task-proxy")
    async with aiohttp.ClientSession() as session:
        backend = make_backend(settings, session)
        assert isinstance(backend, TaskProxyBackend)
        backend.poll_first = 0.05
        with pytest.raises(RemixOutcomeUnknown) as info:
            await backend.remix(RemixRequest(prompt="x"), encoded(), [])
    assert info.value.may_have_run  # never "rejected": the member must not resubmit and pay twice


@pytest.mark.parametrize(
    "address",
    ["2002:7f00:1::", "2002:a9fe:a9fe::", "2002:a00:1::", "fec0::1", "::ffff:10.0.0.1"],
)
def test_tunnelled_and_site_local_addresses_are_refused(address: str) -> None:
    assert not address_allowed(address)


def test_public_addresses_pass() -> None:
    assert address_allowed("8.8.8.8") and address_allowed("2606:4700::1111")


async def test_malformed_redirect_is_a_download_error_for_that_image_only(
    fake: FakeRemix, tmp_path: Path
) -> None:
    async def bad_redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://[::1"})

    app = web.Application()
    app.router.add_get("/r", bad_redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        policy = DownloadPolicy.from_settings(fake_settings(fake))
        images = [
            ResultImage(url=f"http://127.0.0.1:{port}/r"),
            ResultImage(url=fake.result_url(seed=3)),
        ]
        async with make_download_session(policy) as session:
            out = await asyncio.wait_for(download_all(session, images, tmp_path, policy), 10)
        assert isinstance(out[0], DownloadError) and "invalid address" in str(out[0])
        assert not isinstance(out[1], DownloadError) and out[1] is not None
    finally:
        await runner.cleanup()

"""`remixbot run` with REMIXBOT_HTTP_PORT: /healthz and /metrics over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import aiohttp

from bot.cli.run import gateway_probe, serve
from bot.client import RemixBot
from bot.services import open_services
from bot.settings import Settings
from bot.web.prom import PrometheusMetrics
from bot.web.runtime import database_probe
from bot.web.server import PROBES, Endpoint, make_app
from tests.fakediscord.helpers import png_bytes
from tests.fakediscord.server import FakeDiscord
from tests.fakeremix import running_fake
from tests.remixworld import world_settings


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start(
    settings: Settings, discord: FakeDiscord
) -> tuple[asyncio.Task[int], asyncio.Event]:
    """`remixbot run`'s serve() as a task, with its stop event (what SIGTERM sets)."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(settings, discord.token, bot_options={"guild_ready_timeout": 0.05}, stop=stop)
    )
    await discord.wait_identified()
    await discord.wait_until(lambda: discord.commands, 10, "the command sync")
    return task, stop


async def get(url: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r,
    ):
        return r.status, r.headers.get("Content-Type", ""), await r.text()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


async def wait_for(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_endpoint_is_off_unless_the_port_is_set(tmp_path: Path) -> None:
    async with FakeDiscord() as d, running_fake() as r:
        settings = world_settings(d, r, tmp_path / "data")
        assert settings.http_port == 0 and settings.http_host == "127.0.0.1"
        port = free_port()
        server, stop = await start(settings, d)
        try:
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", port)) != 0
        finally:
            stop.set()
            assert await asyncio.wait_for(server, 30) == 0


async def test_healthz_and_metrics_follow_the_bot(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with FakeDiscord() as d, running_fake() as r:
        settings = world_settings(
            d, r, tmp_path / "data", REMIXBOT_HTTP_PORT=str(port), REMIXBOT_DEFAULT_LIMIT="3"
        )
        server, stop = await start(settings, d)
        try:
            await wait_for(lambda: _status(base + "/healthz", 200))
            status, ctype, body = await get(base + "/healthz")
            assert (status, json.loads(body)) == (200, {"status": "ok"})
            assert body.count("\n") == 1 and ctype.startswith("application/json")

            # Delivered (2 images), rejected by the backend, refused for quota (3 a day); the
            # second one's acknowledgement meets a 429 first.
            inter = await d.slash("remix", {**_image(d, "a.png"), "prompt": "x", "num_images": 2})
            await d.wait_until(lambda: (m := d.original(inter)) and m.attachments, 15, "result")
            r.fail_next("400")
            d.rate_limit("POST", r"/interactions/.*/callback", retry_after=0.1)
            await d.slash("remix", {**_image(d, "b.png"), "prompt": "y"})
            await wait_for(lambda: _metric(base, "remixbot_jobs_total", exit="rejected"))
            await d.slash("remix", {**_image(d, "c.png"), "prompt": "z", "num_images": 2})
            await wait_for(lambda: _metric(base, "remixbot_quota_refusals_total"))

            _, ctype, text = await get(base + "/metrics")
            assert ctype.startswith("text/plain") and "version=" in ctype
            assert sample(text, "remixbot_jobs_total", exit="delivered") == 1
            assert sample(text, "remixbot_jobs_total", exit="rejected") == 1
            assert sample(text, "remixbot_jobs_total", exit="unknown") == 0  # every exit listed
            assert sample(text, "remixbot_quota_refusals_total") == 1
            assert sample(text, "remixbot_images_generated_total") == 2
            assert sample(text, "remixbot_images_posted_total") == 2
            assert sample(text, "remixbot_backend_seconds_count") == 2
            assert sample(text, "remixbot_backend_errors_total", kind="RemixRejected") == 1
            assert sample(text, "remixbot_discord_rest_429_total") >= 1
            assert sample(text, "remixbot_ack_seconds_count") == 3
            assert sample(text, "remixbot_inflight_budget_images") == settings.inflight_images
            for name in (
                "remixbot_queue_jobs",
                "remixbot_running_jobs",
                "remixbot_queue_estimated_wait_seconds",
                "remixbot_inflight_images",
                "remixbot_event_loop_lag_seconds",
                "remixbot_event_loop_lag_max_seconds",
                "remixbot_images_withheld_total",
            ):
                assert f"\n{name} " in text, name
            # The container's HEALTHCHECK asks the same /healthz.
            assert await _healthcheck(port) == 0
            # No member id, prompt or secret in any label or value.
            key = settings.api_key.get()  # type: ignore[union-attr]
            for secret in (d.alice["id"], "prompt", key, d.token, "a.png"):
                assert secret not in text, secret
        finally:
            stop.set()
            assert await asyncio.wait_for(server, 30) == 0


async def _status(url: str, want: int) -> bool:
    try:
        status, _, _ = await get(url)
    except aiohttp.ClientError:
        return False
    return status == want


async def _metric(base: str, name: str, **labels: str) -> bool:
    _, _, text = await get(base + "/metrics")
    return sample(text, name, **labels) >= 1


def _image(d: FakeDiscord, name: str) -> dict[str, object]:
    return {"image": d.upload_attachment(name, png_bytes())}


async def test_healthz_is_503_with_a_reason_when_the_gateway_or_the_database_is_down(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as d, running_fake() as r:
        settings = world_settings(d, r, tmp_path / "data", REMIXBOT_HTTP_PORT=str(free_port()))
        async with open_services(settings) as services:
            bot = RemixBot(settings, services=services, extensions=())  # never connected
            app = make_app(PrometheusMetrics(), [gateway_probe(bot), database_probe(services)])
            endpoint = Endpoint(settings, app)
            await endpoint.start()
            try:
                status, _, body = await get(endpoint.url + "/healthz")
                assert status == 503
                assert json.loads(body) == {
                    "status": "unhealthy",
                    "reason": "the Discord gateway is not connected",
                }
                app[PROBES][:] = [database_probe(services)]
                assert (await get(endpoint.url + "/healthz"))[0] == 200
                await services.store.close()  # the database stops answering
                status, _, body = await get(endpoint.url + "/healthz")
                assert status == 503 and "database" in json.loads(body)["reason"]
            finally:
                await endpoint.stop()
                await bot.close()


async def _healthcheck(port: int) -> int:
    """`python -m bot.web.healthcheck` (the Dockerfile's HEALTHCHECK) with the endpoint's port."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(Path(__file__).parents[1])}
    env["REMIXBOT_HTTP_PORT"] = str(port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.web.healthcheck",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 30)


async def test_healthcheck_fails_when_nothing_answers() -> None:
    assert await _healthcheck(free_port()) == 1

"""The admin dashboard over real HTTP on 127.0.0.1: login, every page, filters, the job's input,
the usage chart, quota and block changes through the store, and CSRF on every write."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from bot.log import setup_logging
from bot.secrets import redact
from bot.settings import load_settings
from bot.web.auth import PASSWORD_FILE
from bot.web.dashboard import add_dashboard
from bot.web.prom import PrometheusMetrics
from bot.web.runtime import admin_token
from bot.web.server import Endpoint, make_app
from tests.fakediscord.helpers import BotProcess, png_bytes
from tests.fakediscord.server import FakeDiscord
from tests.remixworld import World, running_world
from tests.test_web_endpoint import free_port

TOKEN = "admin-token-for-tests-7f3a"


@contextlib.asynccontextmanager
async def dashboard(w: World) -> AsyncIterator[str]:
    """The endpoint with the dashboard over the world's services; yields its base URL."""
    app = make_app(PrometheusMetrics(), [])
    add_dashboard(app, w.settings, w.services, TOKEN)
    endpoint = Endpoint(w.settings, app, port=0)
    await endpoint.start()
    try:
        yield endpoint.url
    finally:
        await endpoint.stop()


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=15)
    )


async def login(s: aiohttp.ClientSession, base: str) -> str:
    """Sign in; return the CSRF token of the session."""
    async with s.post(base + "/admin/login", data={"token": TOKEN}) as r:
        assert r.status == 200 and r.url.path == "/admin"
        return csrf(await r.text())


def csrf(html: str) -> str:
    found = re.search(r'name=csrf value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def text(s: aiohttp.ClientSession, url: str, status: int = 200) -> str:
    async with s.get(url) as r:
        assert r.status == status, await r.text()
        return await r.text()


async def test_every_page_needs_the_login_and_the_cookie_is_strict(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w, dashboard(w) as base, client() as s:
        for path in ("/admin", "/admin/jobs", "/admin/jobs/1", "/admin/usage", "/admin/quotas"):
            async with s.get(base + path, allow_redirects=False) as r:
                assert (r.status, r.headers["Location"]) == (303, "/admin/login"), path
        async with s.post(base + "/admin/quotas", data={"action": "unblock", "user": "1"}) as r:
            assert r.status == 403
        async with s.post(base + "/admin/login", data={"token": "guess"}) as r:
            assert r.status == 200 and "not the admin token" in await r.text()
        async with s.post(base + "/admin/login", data={"token": TOKEN}, allow_redirects=False) as r:
            assert r.status == 303
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
        page = await text(s, base + "/admin")
        assert "Queue" in page and "In flight at the backend" in page
        token = csrf(page)
        async with s.post(base + "/admin/logout", data={"csrf": token}) as r:
            assert r.url.path == "/admin/login"
        async with s.get(base + "/admin", allow_redirects=False) as r:
            assert r.status == 303


async def test_jobs_filters_details_input_and_usage_chart(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w, dashboard(w) as base, client() as s:
        inter = await w.slash_remix(png_bytes(120, 80), prompt="a <b>bold</b> cat", num_images=2)
        msg = await w.result_message(inter)
        [job] = await w.jobs_final(1)
        await login(s, base)

        jobs = await text(s, base + "/admin/jobs")
        assert f'href="/admin/jobs/{job.id}"' in jobs
        assert "a &lt;b&gt;bold&lt;/b&gt; cat" in jobs and "<b>bold</b>" not in jobs
        member = w.discord.alice["id"]
        for query, shown in (
            (f"guild={job.guild_id}", True),
            ("guild=123456789012345678", False),
            (f"member={member}", True),
            (f"member=<@{member}>", True),
            ("member=99999", False),
            ("state=delivered", True),
            ("state=failed", False),
        ):
            page = await text(s, f"{base}/admin/jobs?{query}")
            assert (f'href="/admin/jobs/{job.id}"' in page) is shown, query
        page = await text(s, base + "/admin/jobs?state=bogus&guild=x")
        assert "state must be one of" in page and "role=alert" in page

        detail = await text(s, f"{base}/admin/jobs/{job.id}")
        assert "delivered" in detail and "2 / 0" in detail
        assert f"/channels/{job.guild_id}/{msg.channel_id}/{msg.id}" in detail
        assert f'src="/admin/jobs/{job.id}/input"' in detail
        async with s.get(f"{base}/admin/jobs/{job.id}/input") as r:
            assert r.status == 200 and r.content_type in ("image/png", "image/jpeg")
            assert (await r.read())[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb")
        await text(s, f"{base}/admin/jobs/{job.id + 100}", status=404)
        await text(s, f"{base}/admin/jobs/{job.id}/kept/..%2Fx", status=404)

        usage = await text(s, base + "/admin/usage")
        assert f"Guild {job.guild_id}" in usage and "<svg" in usage
        assert len(re.findall(r'<rect class="delivered"', usage)) == 30
        assert "2 images delivered, 2 billed" in usage
        usage7 = await text(s, base + "/admin/usage?days=7")
        assert len(re.findall(r'<rect class="delivered"', usage7)) == 7


async def test_queue_shows_running_and_queued_jobs(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_INFLIGHT_IMAGES="1") as w:
        w.remix.api_delay = 3.0
        async with dashboard(w) as base, client() as s:
            await login(s, base)
            await w.slash_remix(png_bytes())
            await w.discord.wait_until(lambda: w.remix.requests, 10, "the first call")
            att = w.discord.upload_attachment("b.png", png_bytes())
            await w.discord.slash("remix", {"image": att, "prompt": "second"}, user=w.discord.bob)
            for _ in range(50):
                page = await text(s, base + "/admin")
                if "Queued (1)" in page:
                    break
                await asyncio.sleep(0.1)
            assert "Running (1)" in page and "Queued (1)" in page
            assert "generating" in page
            assert "of a budget of <b>1</b> images" in page
            w.remix.stop()


async def test_quota_and_block_changes_go_through_the_store_with_csrf(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w, dashboard(w) as base, client() as s:
        token = await login(s, base)
        bob = w.discord.bob["id"]
        block = {"action": "block", "user": bob, "reason": "spamming the channel"}
        async with s.post(base + "/admin/quotas", data=block) as r:
            assert r.status == 403  # no CSRF token
        async with s.post(base + "/admin/quotas", data={**block, "csrf": "x" * 43}) as r:
            assert r.status == 403
        async with s.post(
            base + "/admin/quotas",
            data={**block, "csrf": token},
            headers={"Origin": "https://evil.example"},
        ) as r:
            assert r.status == 403
        assert (await w.services.store.policies()).blocks == ()

        async with s.post(base + "/admin/quotas", data={**block, "csrf": token}) as r:
            page = await r.text()
            assert (
                r.status == 200
                and f"Blocked {bob} everywhere (every server and direct messages): spamming the channel"
                in page
            )
            assert "<td>everywhere</td><td>spamming the channel</td>" in page
        [blocked] = (await w.services.store.policies()).blocks
        assert (blocked.user_id, blocked.guild_id) == (int(bob), None)
        # The bot refuses the blocked member, as after `remixbot quota block`.
        att = w.discord.upload_attachment("b.png", png_bytes())
        inter = await w.discord.slash("remix", {"image": att, "prompt": "x"}, user=w.discord.bob)
        assert "spamming the channel" in await w.refusal(inter)

        changes = [
            (
                {"action": "set-guild", "guild": "123456789012345678", "limit": "9"},
                "9 images per user",
            ),
            (
                {"action": "set-default", "limit": "4", "period": "weekly"},
                "4 images per user, weekly",
            ),
            ({"action": "grant", "user": bob, "images": "2"}, "Granted 2 extra images"),
            (
                {"action": "block", "user": bob, "reason": "rude", "guild": "123"},
                f"Blocked {bob} in server 123 only: rude",
            ),
            (
                {"action": "unblock", "user": bob},
                f"Lifted {bob}&#x27;s bot-wide block. Still blocked: guild 123.",
            ),
            (
                {"action": "unblock", "user": bob, "guild": "123"},
                f"Lifted {bob}&#x27;s block in server 123.",
            ),
        ]
        for form, said in changes:
            async with s.post(base + "/admin/quotas", data={**form, "csrf": token}) as r:
                assert r.status == 200 and said in await r.text(), form
        p = await w.services.store.policies()
        assert (p.default_limit, p.period, p.guilds, p.blocks) == (
            4,
            "weekly",
            {123456789012345678: 9},
            (),
        )
        for form, said in (
            (
                {"action": "set-guild", "guild": "12", "limit": "lots"},
                "limit must be a whole number",
            ),
            ({"action": "block", "user": bob, "reason": ""}, "needs a reason"),
            ({"action": "drop-tables"}, "not an action"),
        ):
            async with s.post(base + "/admin/quotas", data={**form, "csrf": token}) as r:
                assert r.status == 400 and said in await r.text(), form
        assert (await w.services.store.policies()).guilds == {123456789012345678: 9}


def test_an_unset_admin_token_is_kept_in_a_file_only_its_owner_reads(tmp_path: Path) -> None:
    settings = load_settings(
        {"REMIXBOT_BACKEND": "demo", "REMIXBOT_DATA_DIR": str(tmp_path / "data")}, dotenv=None
    )
    log = io.StringIO()
    handler = setup_logging("INFO", log)
    try:
        token = admin_token(settings)
    finally:
        logging.getLogger().removeHandler(handler)
    kept = tmp_path / "data" / PASSWORD_FILE
    assert kept.read_text() == token + "\n" and len(token) >= 24
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert token not in log.getvalue() and str(kept) in log.getvalue()  # where, never what
    assert redact(f"login with {token}") == "login with [REDACTED]"
    # Kept across restarts, its mode put back; an emptied file gets a new password.
    kept.chmod(0o644)
    assert admin_token(settings) == token and stat.S_IMODE(kept.stat().st_mode) == 0o600
    kept.write_text("\n")
    assert admin_token(settings) not in ("", token)
    # REMIXBOT_ADMIN_TOKEN set: that is the password, and nothing is written.
    given = load_settings(
        {
            "REMIXBOT_BACKEND": "demo",
            "REMIXBOT_DATA_DIR": str(tmp_path / "given"),
            "REMIXBOT_ADMIN_TOKEN": TOKEN,
        },
        dotenv=None,
    )
    assert admin_token(given) == TOKEN and not (tmp_path / "given").exists()


async def test_the_run_logs_where_the_password_is_never_the_password(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    env = {"REMIXBOT_HTTP_PORT": str(port), "REMIXBOT_LOG_FORMAT": "json"}
    async with FakeDiscord() as d, BotProcess(d, data, launcher=False, env=env) as bot:
        await bot.start_and_wait_ready()
        kept = data / PASSWORD_FILE
        await d.wait_until(lambda: "dashboard password" in bot.output(), 20, "the log line")
        password = kept.read_text().strip()
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        async with client() as s, s.post(base + "/admin/login", data={"token": password}) as r:
            assert r.status == 200 and r.url.path == "/admin"
        assert await bot.stop() == 0
        output = bot.output()
        assert password not in output
        lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON
        [said] = [x["message"] for x in lines if "dashboard password" in x["message"]]
        assert str(kept.resolve()) in said

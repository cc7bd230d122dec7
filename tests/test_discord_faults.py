"""Faults on demand: 429 (per route and global), 413/40005, 5xx, expired interaction tokens,
and the app-command error hook's one sentence."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import discord
import pytest

from bot.client import RemixBot, apply_discord_endpoints, reset_discord_endpoints
from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import bot_settings, png_bytes, running_bot

COMMANDS = r"/applications/\d+/commands"


async def test_rate_limited_sync_is_retried(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        fake.rate_limit("PUT", COMMANDS, retry_after=0.2)
        async with running_bot(fake, tmp_path) as bot:
            assert bot.last_sync == "global"
        puts = fake.calls_to("PUT", COMMANDS)
        assert [c.status for c in puts] == [429, 200]
        assert puts[1].at - puts[0].at >= 0.2
        assert (tmp_path / "command-sync.json").is_file()


async def test_global_rate_limit_is_waited_out(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        fake.rate_limit_global(retry_after=0.2)
        async with running_bot(fake, tmp_path):
            pass
        first, second = fake.calls[0], fake.calls[1]
        assert (first.route, first.status) == ("GET /users/@me", 429)
        assert (second.route, second.status) == ("GET /users/@me", 200)


async def test_429_without_via_is_not_retried_by_discord_py(tmp_path: Path) -> None:
    # The fake always adds Via to 429s; a plain aiohttp call shows the reply discord.py relies on.
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        fake.rate_limit("GET", "/users/@me", retry_after=0.5)
        headers = {"Authorization": f"Bot {fake.token}"}
        async with http.get(fake.api_base + "/users/@me", headers=headers) as resp:
            assert resp.status == 429
            assert resp.headers["Via"]
            assert resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["retry_after"] == 0.5


async def test_too_large_upload_gets_413_40005_and_one_sentence(tmp_path: Path) -> None:
    image = png_bytes(300, 300)
    async with (
        FakeDiscord(attachment_size_limit=len(image) - 1) as fake,
        running_bot(fake, tmp_path),
    ):
        att = fake.upload_attachment("big.png", image)
        inter = await fake.slash("probe", {"image": att})
        patch = await fake.wait_for_call(lambda c: c.method == "PATCH")
        assert patch.status == 413
        # The error hook answered with one sentence in place of the "thinking…" (a followup
        # would be a new message beside a loading one).
        notice = await fake.wait_for_message(lambda m: m.interaction_id == inter.id)
        assert notice.content == "Something went wrong on our side; please try again in a minute."
        assert notice.id == inter.original_id and not notice.attachments


async def test_server_error_on_followup_is_retried(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        att = fake.upload_attachment("a.png", png_bytes())
        inter = await fake.slash("probe", {"image": att, "n": 9})
        msg = await fake.wait_for_message(lambda m: m.custom_ids() == ["probe:9"])
        assert msg.id == inter.original_id
        fake.fail("POST", r"/webhooks/\d+/[^/]+", 502)
        seen = set(fake.messages)
        await fake.click(msg.id, "probe:9")
        reply = await fake.wait_for_message(after=seen, within=15)
        assert reply.content.startswith("clicked 9")
        statuses = [c.status for c in fake.calls_to("POST", r"/webhooks/\d+/[^/]+")]
        assert statuses == [502, 200]


async def test_expired_interaction_token_is_refused(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        att = fake.upload_attachment("a.png", png_bytes())
        inter = await fake.slash("probe", {"image": att, "n": 1})
        await fake.wait_for_message(lambda m: m.id == inter.original_id)
        fake.advance_time(15 * 60 + 1)  # the token's 15 minutes pass
        async with aiohttp.ClientSession() as http:
            url = f"{fake.api_base}/webhooks/{fake.app_id}/{inter.token}/messages/@original"
            async with http.patch(url, json={"content": "late"}) as resp:
                assert resp.status == 401
                assert (await resp.json())["code"] == 50027
            url = f"{fake.api_base}/interactions/{inter.id}/{inter.token}/callback"
            async with http.post(url, json={"type": 5}) as resp:
                assert resp.status == 404
                assert (await resp.json())["code"] == 10062


async def test_expired_token_on_a_late_click_reaches_the_error_path(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        att = fake.upload_attachment("a.png", png_bytes())
        inter = await fake.slash("probe", {"image": att, "n": 2})
        msg = await fake.wait_for_message(lambda m: m.id == inter.original_id)
        mark = len(fake.calls)
        fake.expire_on_arrival = True  # the click's token is dead before the bot answers
        await fake.click(msg.id, "probe:2")
        callback = await fake.wait_for_call(lambda c: c.path.endswith("/callback"), after=mark)
        assert callback.status == 404


async def test_expired_cdn_url_is_gone(tmp_path: Path) -> None:
    async with FakeDiscord(cdn_ttl=60) as fake, aiohttp.ClientSession() as http:
        att = fake.upload_attachment("a.png", png_bytes())
        url = fake.attachment_json(att)["url"]
        async with http.get(url) as resp:
            assert resp.status == 200
            assert await resp.read() == att.data
        async with http.get(url.replace("hm=", "hm=0")) as resp:
            assert resp.status == 404
        fake.advance_time(61)
        async with http.get(url) as resp:
            assert resp.status == 404


async def test_invalid_request_error_is_told_as_its_sentence(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        inter = await fake.slash("fail", {"kind": "invalid"})
        call = await fake.wait_for_call(lambda c: c.path.endswith("/callback"))
        assert call.json["type"] == 4
        assert call.json["data"]["content"] == "strength must be from 1 to 10, not 11."
        assert call.json["data"]["flags"] == 64  # ephemeral
        assert fake.original(inter) is not None


async def test_crash_is_told_generically_and_logged_without_details_to_members(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="remixbot.client")
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        await fake.slash("fail", {"kind": "crash"})
        call = await fake.wait_for_call(lambda c: c.path.endswith("/callback"))
        content = call.json["data"]["content"]
        assert content == "Something went wrong on our side; please try again in a minute."
        assert "internal detail" not in content
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)


async def test_rejected_token_raises_login_failure(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        settings = bot_settings(fake, tmp_path)
        apply_discord_endpoints(settings)
        try:
            bot = RemixBot(settings)
            async with bot:
                with pytest.raises(discord.LoginFailure):
                    await bot.login("not-the-token")
        finally:
            reset_discord_endpoints()
        assert fake.calls_to("GET", "/users/@me")[0].status == 401

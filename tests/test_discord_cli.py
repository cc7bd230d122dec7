"""`remixbot invite`, `remixbot sync`, the error sentences, and the fake as its own process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import discord
import pytest
from discord import app_commands

from bot.cli.invite import BOT_PERMISSIONS, fetch_client_id, invite_url
from bot.cli.sync import sync_once
from bot.client import GENERIC_FAILURE, DiscordTokenRejected, reset_discord_endpoints
from bot.discord_sync import SyncState, shape_hash
from bot.errors import InvalidImage
from cogs._render import error_sentence
from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import PROBE, ROOT, BotProcess, bot_settings

COMMANDS = r"/applications/\d+/commands"


def test_invite_url_has_the_scopes_and_permissions() -> None:
    url = urlsplit(invite_url(1234))
    query = parse_qs(url.query)
    assert (url.netloc, url.path) == ("discord.com", "/oauth2/authorize")
    assert query["client_id"] == ["1234"]
    assert query["scope"] == ["bot applications.commands"]
    # View Channel, Send Messages (+ in Threads), Embed Links, Attach Files, Read History, Reactions.
    expected = (1 << 10) | (1 << 11) | (1 << 38) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 6)
    assert query["permissions"] == [str(expected)] == [str(BOT_PERMISSIONS)]


async def test_invite_asks_discord_for_the_client_id(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        try:
            assert await fetch_client_id(bot_settings(fake, tmp_path)) == int(fake.app_id)
        finally:
            reset_discord_endpoints()
        assert fake.calls_to("GET", "/oauth2/applications/@me")


async def test_invite_command_prints_the_url(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        proc = BotProcess(fake, tmp_path / "data", launcher=False, args=("invite",))
        async with proc:
            await proc.start()
            assert await proc.wait() == 0
        output = proc.output()
        assert output.strip().splitlines()[-1] == invite_url(int(fake.app_id))
        # Only the URL: none of discord.py's start-up warnings (voice, PyNaCl, guilds intent).
        assert output.strip().splitlines() == [invite_url(int(fake.app_id))], output


async def test_invite_with_a_bad_token_is_one_sentence(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        try:
            with pytest.raises(DiscordTokenRejected, match="Discord rejected DISCORD_TOKEN"):
                await fetch_client_id(bot_settings(fake, tmp_path, DISCORD_TOKEN="nope" * 8))
        finally:
            reset_discord_endpoints()


async def test_sync_forces_a_global_then_a_guild_sync(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        settings = bot_settings(fake, tmp_path)
        try:
            synced = await sync_once(settings, extensions=(PROBE,))
            assert sorted(c.name for c in synced) == ["fail", "probe"]
            synced = await sync_once(settings, extensions=(PROBE,))  # forced: syncs again
            guild_synced = await sync_once(settings, guild=int(fake.guild_id), extensions=(PROBE,))
            cleared = await sync_once(
                settings, guild=int(fake.guild_id), extensions=(PROBE,), clear=True
            )
        finally:
            reset_discord_endpoints()
        assert len(fake.calls_to("PUT", COMMANDS)) == 2
        guild_puts = fake.calls_to("PUT", rf"/applications/\d+/guilds/{fake.guild_id}/commands")
        assert len(guild_puts) == 2
        assert sorted(c["name"] for c in guild_puts[0].json) == ["fail", "probe"]
        assert guild_puts[1].json == [] and cleared == []
        assert [c.guild_id for c in guild_synced] == [int(fake.guild_id)] * 2
        # A forced global sync also records the shape, so `run` will not sync it again.
        assert SyncState(tmp_path / "command-sync.json").read() == {
            f"global:{fake.app_id}": shape_hash(fake.calls_to("PUT", COMMANDS)[-1].json)
        }
        assert fake.received(2) == []  # REST only: sync never opens the gateway


async def test_sync_command_line(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        proc = BotProcess(
            fake, tmp_path / "data", launcher=False, args=("sync", "--guild", fake.guild_id)
        )
        async with proc:
            await proc.start()
            assert await proc.wait() == 0
        # The production cogs' commands: the member's, the context menu and the admin group.
        assert proc.output().strip().splitlines() == [
            f"Copied 6 application commands to server {fake.guild_id}."
        ]
        [put] = fake.calls_to("PUT", rf"/applications/\d+/guilds/{fake.guild_id}/commands")
        assert sorted(c["name"] for c in put.json) == [
            "Remix this image",
            "jobs",
            "quota",
            "remix",
            "remixadmin",
            "show",
        ]
        clear = BotProcess(
            fake,
            tmp_path / "data",
            launcher=False,
            args=("sync", "--guild", fake.guild_id, "--clear"),
        )
        async with clear:
            await clear.start()
            assert await clear.wait() == 0
        assert clear.output().strip().splitlines() == [
            f"Removed server {fake.guild_id}'s copy of the commands; the global commands are"
            " unchanged and remain available there."
        ]


def test_shape_hash_ignores_order_but_not_content() -> None:
    a = {"name": "a", "type": 1, "description": "x", "options": []}
    b = {"name": "b", "type": 1, "description": "y", "options": []}
    assert shape_hash([a, b]) == shape_hash([b, a])
    assert shape_hash([a, b]) != shape_hash([a, {**b, "description": "z"}])


def test_sync_state_survives_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "command-sync.json"
    path.write_text("{not json")
    state = SyncState(path)
    assert state.read() == {}
    state.write("global:1", "abc")
    assert json.loads(path.read_text()) == {"global:1": "abc"}


def test_error_sentences() -> None:
    bad = InvalidImage("The image is 30 MB; the limit is 25 MB.")

    async def callback(interaction: discord.Interaction) -> None:
        raise bad

    command = app_commands.Command(name="remix", description="Remix", callback=callback)
    wrapped = app_commands.CommandInvokeError(command, bad)
    assert error_sentence(wrapped) == "The image is 30 MB; the limit is 25 MB."
    cooldown = app_commands.CommandOnCooldown(app_commands.Cooldown(1, 30), 12.4)
    assert error_sentence(cooldown) == "You're going a bit fast; try again in 12 seconds."
    missing = app_commands.BotMissingPermissions(["attach_files"])
    assert "attach files" in error_sentence(missing)
    assert error_sentence(RuntimeError("secret")) == GENERIC_FAILURE
    assert error_sentence(app_commands.CheckFailure()) == "You can't use this command here."


async def test_fake_runs_as_its_own_process() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakediscord",
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        env = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        headers = {"Authorization": f"Bot {env['DISCORD_TOKEN']}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(env["DISCORD_API_BASE"] + "/users/@me", headers=headers) as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == "application/json"
                assert (await r.json())["bot"] is True
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

"""Login, sync, a slash command round trip, a button and a reaction: in-process bot vs the fake."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import discord

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import PROBE, PROBE_EXTRA, png_bytes, running_bot

COMMANDS = r"/applications/\d+/commands"


async def test_login_syncs_once_then_only_when_the_shape_changes(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with running_bot(fake, tmp_path) as bot:
            assert bot.last_sync == "global"
        puts = fake.calls_to("PUT", COMMANDS)
        assert len(puts) == 1
        assert sorted(c["name"] for c in puts[0].json) == ["fail", "probe"]
        probe = next(c for c in puts[0].json if c["name"] == "probe")
        assert probe["options"][0] == {
            "type": 11,
            "name": "image",
            "description": "Any file",
            "required": True,
        }
        stored = json.loads((tmp_path / "command-sync.json").read_text())
        assert set(stored) == {f"global:{fake.app_id}"}

        async with running_bot(fake, tmp_path) as bot:
            assert bot.last_sync is None
        assert len(fake.calls_to("PUT", COMMANDS)) == 1

        async with running_bot(fake, tmp_path, extensions=(PROBE, PROBE_EXTRA)) as bot:
            assert bot.last_sync == "global"
        puts = fake.calls_to("PUT", COMMANDS)
        assert len(puts) == 2
        assert sorted(c["name"] for c in puts[1].json) == ["extra", "fail", "probe"]
        # Login used the bot token; the handshake is the documented one.
        me = fake.calls_to("GET", "/users/@me")[0]
        assert me.headers["Authorization"] == f"Bot {fake.token}"
        identify = fake.received(2)[0].d
        # Only what the bot handles: servers (channels, roles) and reactions; nothing privileged.
        assert discord.Intents._from_value(identify["intents"]) == discord.Intents(
            guilds=True, guild_reactions=True, dm_reactions=True
        )


async def test_slash_command_defers_downloads_and_uploads_a_file(tmp_path: Path) -> None:
    image = png_bytes(80, 60)
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        att = fake.upload_attachment("cat.png", image)
        mark = len(fake.calls)
        inter = await fake.slash("probe", {"image": att, "n": 7})

        edit = await fake.wait_for_call(
            lambda c: c.method == "PATCH" and c.path.endswith("/messages/@original"), after=mark
        )
        calls = fake.calls[mark:]
        callback = next(c for c in calls if c.path.endswith("/callback"))
        assert callback.json == {"type": 5}
        assert callback.query.get("with_response") == "1"
        assert "Authorization" not in callback.headers
        # The defer came before the download, and the download before the edit.
        download = next(c for c in calls if c.path.startswith("/attachments/"))
        assert calls.index(callback) < calls.index(download) < calls.index(edit)
        assert download.status == 200

        assert [f.filename for f in edit.files] == ["echo-cat.png"]
        assert edit.files[0].data == image
        assert edit.json["attachments"] == [{"id": 0, "filename": "echo-cat.png"}]

        msg = fake.original(inter)
        assert msg is not None and not msg.loading
        assert msg.content == f"got {len(image)} bytes sha256={hashlib.sha256(image).hexdigest()}"
        assert msg.attachments[0].data == image
        assert msg.custom_ids() == ["probe:7"]


async def test_button_click_reaches_the_dynamic_item(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        att = fake.upload_attachment("a.png", png_bytes())
        inter = await fake.slash("probe", {"image": att, "n": 42})
        msg = await fake.wait_for_message(lambda m: m.custom_ids() == ["probe:42"])
        assert msg.id == inter.original_id

        seen = set(fake.messages)
        click = await fake.click(msg.id, "probe:42", user=fake.bob)
        followup = await fake.wait_for_message(after=seen)
        assert followup.content == f"clicked 42 by {fake.bob['id']}"
        assert click.response_type == 6  # a button's defer() is DEFERRED_UPDATE_MESSAGE


async def test_reaction_reaches_the_bot(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        posted = await fake.post_message("look at this")
        seen = set(fake.messages)
        await fake.react(posted.id, "🔁")
        reply = await fake.wait_for_message(after=seen)
        assert reply.content == f"saw 🔁 on {posted.id}"
        assert fake.calls_to("GET", rf"/channels/\d+/messages/{posted.id}")


async def test_immediate_response_with_a_file_is_a_multipart_callback(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path, extensions=(PROBE_EXTRA,)):
        inter = await fake.slash("extra")
        call = await fake.wait_for_call(lambda c: c.path.endswith("/callback"))
        assert call.status == 200
        assert call.json["type"] == 4
        assert [(f.field, f.filename, f.data) for f in call.files] == [
            ("files[0]", "extra.txt", b"extra-bytes")
        ]
        msg = fake.original(inter)
        assert msg is not None and msg.content == "extra"
        assert msg.attachments[0].data == b"extra-bytes"

"""The fake's own REST model, driven with plain aiohttp: messages, files, reactions, auth, 413."""

from __future__ import annotations

import json

import aiohttp

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes
from tests.fakediscord.payloads import ALL_PERMISSIONS, snowflake, snowflake_time


def _multipart(payload: dict, files: list[tuple[str, bytes]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("payload_json", json.dumps(payload), content_type="application/json")
    for i, (name, data) in enumerate(files):
        form.add_field(f"files[{i}]", data, filename=name, content_type="application/octet-stream")
    return form


async def test_channel_message_lifecycle_with_files_and_reactions() -> None:
    image = png_bytes(30, 20)
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bot {fake.token}"}
        base = f"{fake.api_base}/channels/{fake.channel_id}/messages"
        payload = {"content": "hi", "attachments": [{"id": 0, "filename": "a.png"}]}
        async with http.post(base, data=_multipart(payload, [("a.png", image)]), headers=auth) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/json"
            created = await r.json()
        att = created["attachments"][0]
        assert (att["filename"], att["size"], att["width"], att["height"]) == (
            "a.png",
            len(image),
            30,
            20,
        )
        assert att["content_type"] == "image/png"
        async with http.get(att["url"]) as r:
            assert await r.read() == image
        mid = created["id"]
        async with http.patch(f"{base}/{mid}", json={"content": "edited"}, headers=auth) as r:
            edited = await r.json()
        assert edited["content"] == "edited"
        assert [a["id"] for a in edited["attachments"]] == [att["id"]]  # kept
        assert edited["edited_timestamp"] is not None
        async with http.patch(f"{base}/{mid}", json={"attachments": []}, headers=auth) as r:
            assert (await r.json())["attachments"] == []

        react = f"{base}/{mid}/reactions/%F0%9F%94%81/@me"
        async with http.put(react, headers=auth) as r:
            assert r.status == 204
        assert fake.messages[mid].reactions["🔁"] == {fake.app_id}
        async with http.get(f"{base}/{mid}", headers=auth) as r:
            assert (await r.json())["reactions"][0]["me"] is True
        async with http.delete(react, headers=auth) as r:
            assert r.status == 204
        assert fake.messages[mid].reactions["🔁"] == set()

        async with http.delete(f"{base}/{mid}", headers=auth) as r:
            assert r.status == 204
        async with http.get(f"{base}/{mid}", headers=auth) as r:
            assert r.status == 404
            assert (await r.json())["code"] == 10008
        assert fake.calls[0].files[0].data == image
        assert fake.calls[0].json == payload


async def test_bot_routes_need_the_token_and_uploads_have_limits() -> None:
    async with (
        FakeDiscord(attachment_size_limit=1000, max_request_bytes=1500) as fake,
        aiohttp.ClientSession() as http,
    ):
        base = f"{fake.api_base}/channels/{fake.channel_id}/messages"
        async with http.post(base, json={"content": "x"}) as r:
            assert r.status == 401
        auth = {"Authorization": f"Bot {fake.token}"}
        one_big = _multipart({"content": ""}, [("a.bin", b"x" * 1001)])
        async with http.post(base, data=one_big, headers=auth) as r:
            assert r.status == 413
            assert (await r.json())["code"] == 40005
        two = _multipart({"content": ""}, [("a.bin", b"x" * 800), ("b.bin", b"y" * 800)])
        async with http.post(base, data=two, headers=auth) as r:
            assert r.status == 413
        fake.fail("POST", r"/channels/\d+/messages", 503)
        async with http.post(base, json={"content": "x"}, headers=auth) as r:
            assert r.status == 503
        async with http.post(base, json={"content": "x"}, headers=auth) as r:
            assert r.status == 200
        async with http.get(fake.api_base + "/gateway/bot", headers=auth) as r:
            assert (await r.json())["url"] == fake.gateway_url


async def test_create_message_needs_send_messages_and_a_reply_read_message_history() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        base = f"{fake.api_base}/channels/{fake.channel_id}/messages"
        auth = {"Authorization": f"Bot {fake.token}"}
        async with http.post(base, json={"content": "first"}, headers=auth) as r:
            first = (await r.json())["id"]
        reply = {"content": "re", "message_reference": {"message_id": first}}
        fake.bot_channel_permissions[fake.channel_id] = int(ALL_PERMISSIONS) & ~(1 << 16)
        async with http.post(base, json=reply, headers=auth) as r:
            assert (r.status, (await r.json())["code"]) == (403, 50013)
        async with http.post(base, json={"content": "plain"}, headers=auth) as r:
            assert r.status == 200
        fake.bot_channel_permissions[fake.channel_id] = int(ALL_PERMISSIONS) & ~(1 << 11)
        async with http.post(base, json={"content": "plain"}, headers=auth) as r:
            assert (r.status, (await r.json())["code"]) == (403, 50013)


async def test_the_bot_token_uploads_under_the_servers_limit() -> None:
    # The interaction's limit counts the member's own (Nitro); the bot's is the server's.
    async with (
        FakeDiscord(attachment_size_limit=50 * 1024 * 1024) as fake,
        aiohttp.ClientSession() as http,
    ):
        assert fake.guild_upload_limit == 10 * 1024 * 1024
        base = f"{fake.api_base}/channels/{fake.channel_id}/messages"
        auth = {"Authorization": f"Bot {fake.token}"}
        big = _multipart({"content": ""}, [("a.bin", b"x" * (10 * 1024 * 1024 + 1))])
        async with http.post(base, data=big, headers=auth) as r:
            assert (r.status, (await r.json())["code"]) == (413, 40005)
        fake.premium_tier = 2  # a boosted server: 50 MiB
        big = _multipart({"content": ""}, [("a.bin", b"x" * (10 * 1024 * 1024 + 1))])
        async with http.post(base, data=big, headers=auth) as r:
            assert r.status == 200


def test_snowflakes_come_from_the_clock() -> None:
    a, b = snowflake(1_700_000_000.0), snowflake(1_700_000_000.0)
    assert a != b
    assert abs(snowflake_time(a) - 1_700_000_000.0) < 0.001

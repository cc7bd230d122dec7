"""/remix and rerolls end to end: real bot, real services, fake Discord and fake remix server."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from bot.log import setup_logging
from bot.remix.backends import make_backend
from bot.remix.request import RemixRequest
from bot.store import NewJob, Store
from tests.fakediscord import payloads as p
from tests.fakediscord.helpers import png_bytes
from tests.fakediscord.server import FakeDiscord, StoredMessage
from tests.fakediscord.world import SEND_MESSAGES
from tests.fakeremix import API_KEY, running_fake
from tests.fakeremix.helpers import encoded
from tests.remixworld import running_world, world_settings

# The whole product on each database: SQLite, then PostgreSQL.
pytestmark = pytest.mark.usefixtures("on_each_database")


async def test_remix_happy_path_posts_files_and_settles(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes(320, 200), num_images=2, style_type="DESIGN")
        msg = await w.result_message(inter)
        # Deferred first: the callback (type 5) precedes every other call for this interaction.
        mine = [c for c in w.discord.calls if inter.token in c.path or inter.id in c.path]
        assert mine[0].path.endswith("/callback") and mine[0].json == {"type": 5}
        assert len(msg.attachments) == 2
        assert all(
            a.data[:8] == b"\x89PNG\r\n\x1a\n" or a.data[:3] == b"\xff\xd8\xff"
            for a in msg.attachments
        )
        assert any("remix:reroll:" in c for c in msg.custom_ids())
        sent = w.remix.last()
        assert sent.field("prompt") == "a watercolor cat"
        assert sent.field("num_images") == "2" and sent.field("style_type") == "DESIGN"
        assert sent.field("aspect_ratio") == "16x10"  # nearest the 320x200 input
        jobs = await w.jobs_final(1)
        assert [(j.state, j.images_delivered) for j in jobs] == [("delivered", 2)]
        # No progress line ("Queued…", "Uploading…") was left on top of the result.
        assert not w.discord.original(inter).content
        assert await w.books_balance() == []


async def test_progress_is_edited_only_when_its_line_changes(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes(320, 200))
        await w.result_message(inter)
        lines = [
            c.json["content"]
            for c in w.discord.calls
            if c.method == "PATCH"
            and inter.token in c.path
            and not c.files
            and isinstance(c.json, dict)
            and c.json.get("content")
        ]
        # The job's start and its "generating" stage read alike: one edit, not two.
        assert all(a != b for a, b in itertools.pairwise(lines)), lines
        assert [line.startswith("🎨 Generating") for line in lines].count(True) == 1, lines
        assert lines[-1] == "📤 Uploading the images…"


async def test_every_option_group_reaches_the_backend(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(
            png_bytes(256, 256),
            aspect_ratio="4x5",
            rendering_speed="TURBO",
            magic_prompt="OFF",
            image_weight=80,
            seed=1234,
            negative_prompt="blurry",
            color_palette="PASTEL",
            style_preset="WATERCOLOR",
        )
        await w.result_message(inter)
        sent = w.remix.last()
        assert {
            k: sent.field(k)
            for k in (
                "aspect_ratio",
                "rendering_speed",
                "magic_prompt",
                "image_weight",
                "seed",
                "negative_prompt",
                "style_preset",
            )
        } == {
            "aspect_ratio": "4x5",
            "rendering_speed": "TURBO",
            "magic_prompt": "OFF",
            "image_weight": "80",
            "seed": "1234",
            "negative_prompt": "blurry",
            "style_preset": "WATERCOLOR",
        }
        assert json.loads(sent.field("color_palette") or "{}") == {"name": "PASTEL"}
        # The input was centre-cropped to 4x5 before sending.
        image = Image.open(io.BytesIO(sent.files["image"][0].data))
        assert abs(image.width / image.height - 4 / 5) < 0.01
        await w.jobs_final(1)


async def test_style_reference_is_sent_with_the_image(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        ref = w.discord.upload_attachment("style.png", png_bytes(128, 128, (10, 200, 10)))
        inter = await w.slash_remix(png_bytes(200, 200), style_reference=ref)
        await w.result_message(inter)
        assert len(w.remix.last().files["style_reference_images"]) == 1
        [job] = await w.jobs_final(1)
        assert len(job.style_ref_keys) == 1


async def test_invalid_option_is_refused_before_defer_and_costs_nothing(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_MAX_IMAGES_PER_JOB="2") as w:
        inter = await w.slash_remix(png_bytes(), num_images=4)
        await w.discord.wait_until(lambda: w.ephemeral_replies(), 10, "an ephemeral reply")
        assert w.ephemeral_replies() == ["num_images must be from 1 to 2 on this server, not 4."]
        assert inter.response_type == 4  # answered directly, never deferred
        assert w.remix.api_requests() == []
        assert await w.services.store.list_jobs() == []


async def test_quota_exhausted_is_ephemeral_and_free(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_DEFAULT_LIMIT="1") as w:
        await w.slash_remix(png_bytes(), num_images=2)
        await w.discord.wait_until(lambda: w.ephemeral_replies(), 10, "an ephemeral reply")
        [reply] = w.ephemeral_replies()
        assert reply.startswith(
            "You have 1 of 1 image left today; this needs 2. Your quota resets <t:"
        )
        # Answered at once (type 4, ephemeral), not after a public "thinking…".
        callbacks = w.discord.calls_to("POST", r"/interactions/\d+/[^/]+/callback")
        assert [(c.json["type"], c.json["data"]["flags"] & 64) for c in callbacks] == [(4, 64)]
        assert w.remix.api_requests() == []
        assert await w.services.store.list_jobs() == []


async def test_blocked_user_is_refused_with_the_reason(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        await w.services.store.block(
            int(w.discord.alice["id"]), "spamming the channel", guild_id=None
        )
        await w.slash_remix(png_bytes())
        await w.discord.wait_until(lambda: w.ephemeral_replies(), 10, "an ephemeral reply")
        assert w.ephemeral_replies() == ["You are blocked from remixing: spamming the channel."]
        assert w.remix.api_requests() == []


async def test_bad_image_is_refused_in_one_sentence(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        # Known only after the download, so after the public defer: the sentence replaces the
        # "thinking…" (a followup would edit that same message; Discord has no private answer).
        inter = await w.slash_remix(b"<html><body>not an image</body></html>", filename="cat.png")
        reply = await w.refusal(inter)
        assert "send a JPEG, PNG or WebP" in reply or "not an image" in reply
        assert w.ephemeral_replies() == []
        assert w.remix.api_requests() == []
        assert await w.services.store.list_jobs() == []


@pytest.mark.parametrize(
    ("fault", "state", "words"),
    [
        ("422", "failed", "safety check"),
        ("500", "failed", "You were not charged"),
        ("hang", "unknown", "You were not charged"),
    ],
)
async def test_backend_failures_refund_and_explain(
    tmp_path: Path, fault: str, state: str, words: str
) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_BACKEND_TIMEOUT="1") as w:
        w.remix.fail_next(fault)
        inter = await w.slash_remix(png_bytes())
        [job] = await w.jobs_final(1)
        assert job.state == state
        msg = await w.discord.wait_until(
            lambda: (m := w.discord.original(inter)) and "⚠️" in m.content and m, 10, "failure"
        )
        assert words in msg.content
        assert not msg.attachments
        status = await w.services.store.quota_status(job.user_id, job.guild_id)
        assert status.used == 0 and status.reserved == 0
        assert await w.books_balance() == []
        w.remix.stop()


async def test_backend_429_is_retried_then_delivered(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        w.remix.fail_next("429", retry_after="0")
        inter = await w.slash_remix(png_bytes())
        await w.result_message(inter)
        assert len(w.remix.api_requests()) == 2
        [job] = await w.jobs_final(1)
        assert (job.state, job.images_delivered) == ("delivered", 1)


async def test_unsafe_images_are_withheld_and_not_charged(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        w.remix.unsafe = {1}
        inter = await w.slash_remix(png_bytes(), num_images=3)
        msg = await w.result_message(inter)
        assert len(msg.attachments) == 2
        assert "1 of 3 images were withheld by the backend's safety filter" in json.dumps(
            msg.embeds
        )
        [job] = await w.jobs_final(1)
        assert (job.images_delivered, job.images_withheld) == (2, 1)
        status = await w.services.store.quota_status(job.user_id, job.guild_id)
        assert status.used == 2
        assert await w.books_balance() == []


async def test_damaged_result_image_is_not_posted_or_charged(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        # The second image's body is cut in half: right magic bytes, undecodable pixels.
        w.remix.damaged = {1}
        inter = await w.slash_remix(png_bytes(), num_images=3)
        msg = await w.result_message(inter)
        assert len(msg.attachments) == 2
        assert "1 image(s) could not be downloaded (not charged)" in json.dumps(msg.embeds)
        [job] = await w.jobs_final(1)
        assert job.images_delivered == 2
        status = await w.services.store.quota_status(job.user_id, job.guild_id)
        assert status.used == 2
        assert await w.services.store.backend_cost(job.id) == ("billed", 3)
        assert await w.books_balance() == []


async def test_discord_413_is_refitted_and_retried_once(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        # The first upload of files is refused, as Discord does for a request over its limit.
        w.discord.fail("PATCH", r".*/messages/@original", 413, code=40005, times=1, with_files=True)
        inter = await w.slash_remix(png_bytes(), num_images=2)
        msg = await w.result_message(inter)
        assert len(msg.attachments) == 2
        uploads = [c for c in w.discord.calls if c.method == "PATCH" and c.files]
        assert [c.status for c in uploads] == [413, 200]  # refused once, re-fitted, retried
        [job] = await w.jobs_final(1)
        assert job.images_delivered == 2


async def test_reroll_by_button_charges_the_clicker(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes(), seed=77)
        msg = await w.result_message(inter)
        [first] = await w.jobs_final(1)
        click = await w.discord.click(msg.id, f"remix:reroll:{first.id}", user=w.discord.bob)
        await w.result_message(click)
        _, reroll = await w.jobs_final(2)
        assert (reroll.kind, reroll.parent_job_id) == ("reroll", first.id)
        assert reroll.user_id == int(w.discord.bob["id"])
        assert w.remix.last().field("seed") is None  # a new seed, chosen by the backend
        assert w.remix.last().field("prompt") == "a watercolor cat"
        assert await w.books_balance() == []


async def test_reroll_by_reaction_replies_in_the_channel(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        msg = await w.result_message(inter)
        before = set(w.discord.messages)
        await w.discord.react(msg.id, "🔁", user=w.discord.bob)
        reply = await w.discord.wait_for_message(lambda m: bool(m.attachments), after=before)
        assert f"<@{w.discord.bob['id']}>" in reply.content
        _, reroll = await w.jobs_final(2)
        assert reroll.user_id == int(w.discord.bob["id"]) and reroll.kind == "reroll"
        assert int(reply.id) in reroll.message_ids
        # It pings the member who rerolled, and never @everyone or a role (prompts and backend
        # reasons end up in messages).
        create = w.discord.calls_to("POST", rf"/channels/{reply.channel_id}/messages")[-1]
        mentions = create.json["allowed_mentions"]
        assert [str(u) for u in mentions["users"]] == [w.discord.bob["id"]]
        assert "everyone" not in mentions["parse"] and "roles" not in mentions["parse"]


async def test_reaction_reroll_where_the_bot_cannot_post_costs_nothing(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        msg = await w.result_message(inter)
        await w.jobs_final(1)
        calls = len(w.remix.api_requests())
        # The bot lost Send Messages here; a reaction carries no app_permissions to check.
        channel = msg.channel_id
        w.discord.bot_channel_permissions[channel] = int(p.ALL_PERMISSIONS) & ~SEND_MESSAGES
        posts = rf"/channels/{channel}/messages"
        before = len(w.discord.calls_to("POST", posts))
        await w.discord.react(msg.id, "🔁", user=w.discord.bob)
        # The reply is refused (403/50013), and so is the same message sent once more plainly.
        await w.discord.wait_until(
            lambda: [c.status for c in w.discord.calls_to("POST", posts)[before:]] == [403, 403],
            5,
            "both tries refused",
        )
        await asyncio.sleep(0.3)
        assert len(w.remix.api_requests()) == calls  # no paid backend call
        assert len(await w.services.store.list_jobs()) == 1  # nothing reserved
        assert await w.books_balance() == []


async def test_a_lost_reply_on_a_channel_post_does_not_post_twice(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        msg = await w.result_message(inter)
        await w.jobs_final(1)
        # The result reply is created, but its HTTP answer is lost (a 500 after the fact).
        # discord.py retries the POST with the same nonce and enforce_nonce, so Discord returns
        # the first message instead of making a second (the fake does as the reference says).
        w.discord.fail("POST", r"/channels/\d+/messages", 500, with_files=True, after=True)
        before = set(w.discord.messages)
        await w.discord.react(msg.id, "🔁", user=w.discord.bob)
        _, reroll = await w.jobs_final(2, within=20)
        results = [m for i, m in w.discord.messages.items() if i not in before and m.attachments]
        assert len(results) == 1
        assert reroll.message_ids == (int(results[0].id),)


async def test_a_blocked_member_s_reaction_keeps_the_reason_private(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        msg = await w.result_message(inter)
        await w.jobs_final(1)
        await w.services.store.block(int(w.discord.bob["id"]), "posted gore twice", guild_id=None)
        before = set(w.discord.messages)
        await w.discord.react(msg.id, "🔁", user=w.discord.bob)

        def told() -> str | None:
            new = [m for i, m in w.discord.messages.items() if i not in before]
            return new[0].content if new and "can't remix" in new[0].content else None

        text = await w.discord.wait_until(told, 10, "the refusal in the channel")
        assert "/quota" in text
        assert not any("gore" in m.content for m in w.discord.messages.values())


async def test_an_unexpected_reroll_failure_replaces_the_status_reply(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        msg = await w.result_message(inter)
        [job] = await w.jobs_final(1)
        # The stored input cannot be read (an I/O error, not a refusal).
        path = w.services.store.inputs.path(job.input_key)
        path.unlink()
        path.mkdir()
        before = set(w.discord.messages)
        await w.discord.react(msg.id, "🔁", user=w.discord.bob)

        def status() -> str | None:
            new = [m for i, m in w.discord.messages.items() if i not in before]
            return new[0].content if new and "Rerolling" not in new[0].content else None

        text = await w.discord.wait_until(status, 10, "the status reply replaced")
        assert "went wrong" in text.lower() or "try again" in text.lower()


async def test_rerolls_work_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as discord_fake, running_fake() as remix_fake:
        async with running_world(data, discord=discord_fake, remix=remix_fake) as w:
            inter = await w.slash_remix(png_bytes())
            msg = await w.result_message(inter)
            [first] = await w.jobs_final(1)
        # A new process on the same data directory: nothing of the first lives in memory.
        async with running_world(data, discord=discord_fake, remix=remix_fake) as w2:
            click = await w2.discord.click(msg.id, f"remix:reroll:{first.id}")
            await w2.result_message(click)
            before = set(w2.discord.messages)
            await w2.discord.react(msg.id, "🔁", user=w2.discord.bob)
            await w2.discord.wait_for_message(lambda m: bool(m.attachments), after=before)
            jobs = await w2.jobs_final(3)
            assert [j.kind for j in jobs] == ["remix", "reroll", "reroll"]
            assert await w2.books_balance() == []


async def test_result_after_token_expiry_goes_to_the_channel(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        w.services.scheduler.pause(1.0)  # hold the job in the queue past the "15 minutes"
        inter = await w.slash_remix(png_bytes())
        await w.discord.wait_until(lambda: inter.response_type == 5, 5, "the defer")
        await w.discord.wait_for_call(
            lambda c: c.method == "GET" and c.path.endswith("/messages/@original"), within=5
        )
        w.discord.expire_interaction(inter.token)
        before = set(w.discord.messages)
        reply = await w.discord.wait_for_message(lambda m: bool(m.attachments), after=before)
        assert reply.webhook_id is None  # sent with the bot token, not the interaction webhook
        create = w.discord.calls_to("POST", rf"/channels/{reply.channel_id}/messages")[-1]
        payload = create.json if isinstance(create.json, dict) else {}
        assert str(payload.get("message_reference", {}).get("message_id")) == inter.original_id
        [job] = await w.jobs_final(1)
        assert job.state == "delivered"


async def test_twenty_remixes_from_ten_users_under_an_inflight_cap(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_INFLIGHT_IMAGES="3") as w:
        users = [p.user(p.snowflake(), f"user{n}") for n in range(10)]
        inters = []
        for n in range(20):
            att = w.discord.upload_attachment("in.png", png_bytes(64 + n, 64))
            inters.append(
                await w.discord.slash(
                    "remix",
                    {"image": att, "prompt": f"p{n}", "num_images": 1 + n % 2},
                    user=users[n % 10],
                )
            )
        jobs = await w.jobs_final(20, within=60)
        assert all(i.response_type == 5 for i in inters)  # every interaction deferred
        assert [j.state for j in jobs] == ["delivered"] * 20
        for inter in inters:
            await w.result_message(inter)
        assert await w.books_balance() == []


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_debug_logs_never_hold_secrets(tmp_path: Path, fmt: str) -> None:
    """A whole session at DEBUG: token, API key, interaction tokens and signatures stay out,
    in text lines and in JSON lines alike."""
    stream = io.StringIO()
    handler = setup_logging("DEBUG", stream=stream, fmt=fmt)
    try:
        async with running_world(tmp_path / "data") as w:
            inter = await w.slash_remix(png_bytes(), num_images=2)
            msg = await w.result_message(inter)
            [first] = await w.jobs_final(1)
            click = await w.discord.click(msg.id, f"remix:reroll:{first.id}", user=w.discord.bob)
            await w.result_message(click)
            w.remix.fail_next("401")
            await w.slash_remix(png_bytes())
            await w.jobs_final(3)
            secrets = [w.discord.token, API_KEY, inter.token, click.token]
            signatures = [
                value
                for call in w.discord.calls
                for key, value in call.query.items()
                if key in ("hm", "sig")
            ]
            signatures += [h.split("sig=")[1].split("&")[0] for h in w.remix.hits if "sig=" in h]
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "discord" in text and "remixbot" in text.lower()  # the capture really saw the run
    assert len(text) > 2000
    leaked = [s[:6] + "…" for s in secrets + signatures if s and s in text]
    assert leaked == []


async def test_missing_attach_files_is_explained_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_attach = str(int(p.ALL_PERMISSIONS) & ~(1 << 15))  # ATTACH_FILES is bit 15
    async with running_world(tmp_path / "data") as w:
        monkeypatch.setattr(p, "ALL_PERMISSIONS", without_attach)
        await w.slash_remix(png_bytes())
        await w.discord.wait_until(lambda: w.ephemeral_replies(), 10, "an ephemeral reply")
        assert w.ephemeral_replies() == [
            "I can't post images in this channel: I'm missing Attach Files; "
            "ask a server admin to grant them."
        ]
        assert w.remix.api_requests() == []
        assert await w.services.store.list_jobs() == []


async def test_full_queue_answers_busy_without_charging(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_QUEUE_MAX="1") as w:
        w.services.scheduler.pause(2.0)  # nothing starts: the first job holds the only place
        first = await w.slash_remix(png_bytes())
        await w.discord.wait_until(
            lambda: (m := w.discord.original(first)) and "Queued" in m.content, 10, "queued"
        )
        await w.slash_remix(png_bytes())
        await w.discord.wait_until(lambda: w.ephemeral_replies(), 10, "an ephemeral reply")
        assert w.ephemeral_replies() == ["The remix queue is full; try again in a minute."]
        jobs = await w.jobs_final(1)
        assert [j.state for j in jobs] == ["delivered"]
        assert await w.books_balance() == []


async def test_task_proxy_job_is_resumed_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as discord_fake, running_fake() as remix_fake:
        settings = world_settings(discord_fake, remix_fake, data, REMIXBOT_BACKEND="task-proxy")
        # The state a killed process leaves: a task submitted at the proxy, its job running.
        remix_fake.task_outcome = "never"
        submitted: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def on_submitted(task_id: str) -> None:
            submitted.set_result(task_id)

        async with aiohttp.ClientSession() as session:
            backend = make_backend(settings, session)
            run = asyncio.create_task(
                backend.remix(
                    RemixRequest(prompt="resume me"), encoded(), [], on_submitted=on_submitted
                )
            )
            task_id = await asyncio.wait_for(submitted, 10)
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
        remix_fake.task_outcome = "succeed"
        # The member's request message, already in the channel (no bot is connected yet).
        request_msg = StoredMessage(
            id=p.snowflake(),
            channel_id=discord_fake.channel_id,
            author=discord_fake.alice,
            content="please remix this",
        )
        discord_fake.messages[request_msg.id] = request_msg
        alice = int(discord_fake.alice["id"])
        # Alice's tier: roles are not stored with the job, so the resumed run must ask Discord.
        patron = await discord_fake.give_role(discord_fake.alice, "Patron")
        async with await Store.from_settings(settings) as store:
            await store.set_role(int(discord_fake.guild_id), patron, 50)
            job = await store.submit_job(
                NewJob(
                    interaction_id=None,
                    guild_id=int(discord_fake.guild_id),
                    channel_id=int(discord_fake.channel_id),
                    user_id=alice,
                    kind="remix",
                    parent_job_id=None,
                    request=RemixRequest(prompt="resume me").to_dict(),
                    input_key=None,
                    style_ref_keys=(),
                    backend="task-proxy",
                    images=1,
                    request_message_id=int(request_msg.id),
                )
            )
            await store.mark_running(job.id, task_id)

        before = set(discord_fake.messages)
        async with running_world(
            data, discord=discord_fake, remix=remix_fake, REMIXBOT_BACKEND="task-proxy"
        ) as w:
            reply = await w.discord.wait_for_message(
                lambda m: bool(m.attachments), after=before, within=20
            )
            assert f"<@{alice}>" in reply.content
            assert "images left: 49" in json.dumps(reply.embeds)  # her tier of 50, not 25
            create = w.discord.calls_to("POST", rf"/channels/{reply.channel_id}/messages")[-1]
            assert str(create.json["message_reference"]["message_id"]) == request_msg.id
            [done] = await w.jobs_final(1)
            assert (done.state, done.images_delivered) == ("delivered", 1)
            assert await w.books_balance() == []


async def test_a_double_tapped_reaction_rerolls_once(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        msg = await w.result_message(inter)
        before = set(w.discord.messages)
        await w.discord.react(msg.id, "🔁", user=w.discord.bob)
        await w.discord.react(msg.id, "🔁", user=w.discord.bob)  # redelivered / tapped twice
        await w.discord.react(msg.id, "🔁", user=w.discord.owner)  # someone else: a reroll
        await w.discord.wait_until(
            lambda: (
                len(
                    [m for m in w.discord.messages.values() if m.id not in before and m.attachments]
                )
                >= 2
            ),
            15,
            "two reroll results",
        )
        jobs = await w.jobs_final(3)
        rerollers = sorted(j.user_id for j in jobs if j.kind == "reroll")
        assert rerollers == sorted([int(w.discord.bob["id"]), int(w.discord.owner["id"])])
        assert await w.books_balance() == []


async def test_a_reroll_is_in_the_books_before_its_status_message_is_deleted(
    tmp_path: Path,
) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        msg = await w.result_message(inter)
        before = set(w.discord.messages)
        # Deleting the "Rerolling…" status message is slow: Discord rate-limits it for 3 s.
        w.discord.rate_limit("DELETE", r".*/messages/\d+$", retry_after=3.0, times=1)
        await w.discord.react(msg.id, "🔁", user=w.discord.bob)

        def new(attachments: bool) -> list:
            return [
                m
                for m in w.discord.messages.values()
                if m.id not in before and bool(m.attachments) == attachments
            ]

        await w.discord.wait_until(lambda: new(True), 15, "the reroll's result")
        # The result is settled at once; the status message's slow delete comes after it.
        jobs = await w.jobs_final(2, within=2)
        assert jobs[1].state == "delivered"
        [status] = new(False)  # the "Rerolling…" reply, still there
        assert not status.deleted
        await w.discord.wait_until(lambda: status.deleted, 10, "the status message's delete")
        assert await w.books_balance() == []


async def test_quota_command_shows_what_is_left_and_when_it_resets(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_DEFAULT_LIMIT="5") as w:
        inter = await w.slash_remix(png_bytes(), num_images=2)
        await w.result_message(inter)
        await w.jobs_final(1)
        await w.discord.slash("quota", {})
        await w.discord.wait_until(lambda: w.ephemeral_replies(), 10, "the quota reply")
        [reply] = w.ephemeral_replies()
        assert reply.startswith("You have **3** of 5 images left today; it resets <t:")
        await w.services.store.block(int(w.discord.alice["id"]), "testing", guild_id=None)
        await w.discord.slash("quota", {})
        await w.discord.wait_until(lambda: len(w.ephemeral_replies()) == 2, 10, "second reply")
        assert w.ephemeral_replies()[1] == "You are blocked from remixing: testing"


async def test_role_tiers_and_exempt_roles_come_from_the_member(tmp_path: Path) -> None:
    # Discord announces every role of a guild (GUILD_CREATE, GUILD_ROLE_CREATE); the bot reads
    # them with discord.py's public Member.roles.
    async with running_world(tmp_path / "data", REMIXBOT_DEFAULT_LIMIT="2") as w:
        store, guild = w.services.store, int(w.discord.guild_id)
        patron = await w.discord.give_role(w.discord.alice, "Patron")
        await store.set_role(guild, patron, 10)
        # Over the default of 2, within Alice's tier of 10.
        inter = await w.slash_remix(png_bytes(), num_images=4)
        msg = await w.result_message(inter)
        assert len(msg.attachments) == 4
        assert "images left: 6" in json.dumps(msg.embeds)
        await w.discord.slash("quota", {})
        await w.discord.wait_until(lambda: w.ephemeral_replies(), 10, "the quota reply")
        assert w.ephemeral_replies()[0].startswith("You have **6** of 10 images left today")
        # Bob has no role: the default applies to him.
        await w.discord.slash("remix", {"image": w.discord.upload_attachment("b.png", png_bytes()),
                                        "prompt": "x", "num_images": 3}, user=w.discord.bob)  # fmt: skip
        await w.discord.wait_until(lambda: len(w.ephemeral_replies()) == 2, 10, "Bob's refusal")
        assert w.ephemeral_replies()[1].startswith("You have 2 of 2 images left today")
        # An exempt role makes him unlimited.
        staff = await w.discord.give_role(w.discord.bob, "Staff")
        await store.set_exempt_role(guild, staff)
        await w.discord.slash("quota", {}, user=w.discord.bob)
        await w.discord.wait_until(lambda: len(w.ephemeral_replies()) == 3, 10, "Bob's quota")
        assert "unlimited" in w.ephemeral_replies()[2].lower()
        assert await w.books_balance() == []


async def test_reroll_button_works_when_the_click_has_no_app_permissions(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        msg = await w.result_message(inter)
        [first] = await w.jobs_final(1)
        w.discord.send_app_permissions = False  # the key is optional; absent is not "none"
        click = await w.discord.click(msg.id, f"remix:reroll:{first.id}", user=w.discord.bob)
        await w.result_message(click)
        assert w.ephemeral_replies() == []


async def test_a_double_clicked_reroll_button_charges_once(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes())
        msg = await w.result_message(inter)
        [first] = await w.jobs_final(1)
        custom_id = f"remix:reroll:{first.id}"
        clicks = [
            await w.discord.click(msg.id, custom_id, user=w.discord.bob),
            await w.discord.click(msg.id, custom_id, user=w.discord.bob),
        ]

        def results() -> list:
            found = [w.discord.original(c) for c in clicks]
            return [m for m in found if m is not None and m.attachments]

        # Whichever click the bot takes first runs; Discord does not order their handling.
        await w.discord.wait_until(results, 15, "one click's result")
        await w.discord.wait_until(lambda: w.ephemeral_replies(), 10, "the other click's reply")
        assert len(results()) == 1
        assert w.ephemeral_replies() == [
            "You're already rerolling this one; the result will appear below."
        ]
        jobs = await w.jobs_final(2)
        assert [j.kind for j in jobs] == ["remix", "reroll"]
        assert await w.books_balance() == []


async def test_reroll_refused_when_the_backend_can_no_longer_do_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as discord_fake, running_fake() as remix_fake:
        async with running_world(data, discord=discord_fake, remix=remix_fake) as w:
            inter = await w.slash_remix(png_bytes(), rendering_speed="TURBO")
            msg = await w.result_message(inter)
            [first] = await w.jobs_final(1)
        # The admin moves to the legacy backend, which has no rendering_speed.
        legacy = {"REMIXBOT_BACKEND": "ideogram-legacy"}
        async with running_world(data, discord=discord_fake, remix=remix_fake, **legacy) as w2:
            calls_before = len(remix_fake.api_requests())
            click = await w2.discord.click(msg.id, f"remix:reroll:{first.id}", user=w2.discord.bob)
            reply = await w2.refusal(click)
            assert reply.startswith("That remix can't be rerolled on this server any more (")
            assert reply.endswith("start a new one with /remix.")
            assert len(remix_fake.api_requests()) == calls_before
            assert len(await w2.services.store.list_jobs()) == 1  # nothing reserved


async def test_late_result_413_in_the_channel_is_refitted_once(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        w.discord.fail("POST", r"/channels/\d+/messages", 413, code=40005, with_files=True)
        w.services.scheduler.pause(1.0)  # hold the job past the "15 minutes"
        inter = await w.slash_remix(png_bytes(), num_images=2)
        await w.discord.wait_for_call(
            lambda c: c.method == "GET" and c.path.endswith("/messages/@original"), within=5
        )
        w.discord.expire_interaction(inter.token)  # results now go to the channel
        [job] = await w.jobs_final(1)
        uploads = [c for c in w.discord.calls if c.method == "POST" and c.files]
        assert [c.status for c in uploads] == [413, 200]
        assert (job.state, job.images_delivered) == ("delivered", 2)

"""The rules a real Discord holds the bot to, which a lenient fake would let slide: a reply needs
Read Message History, an interaction needs its answer within 3 seconds of its creation, a
followup is always a new message, clients send emoji with or without a variation selector, the
bot token uploads under the server's limit, and a channel option offers only the channels it
means. Each runs the real bot (unmodified discord.py) against the fake, made as strict as
Discord documents."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

from tests.fakediscord import payloads as p
from tests.fakediscord.helpers import png_bytes
from tests.fakediscord.server import FakeDiscord, FakeInteraction, MiB
from tests.fakediscord.world import READ_MESSAGE_HISTORY
from tests.fakeremix.images import photo_like
from tests.remixworld import World, running_world

REFUSED = "That prompt uses a word or phrase this server does not allow; change it and try again."
# Discord's 3 seconds, which the fake enforces in these tests (off by default elsewhere).
DISCORD_DEADLINE = 3.0


async def _result(w: World) -> tuple[Any, Any]:
    inter = await w.slash_remix(png_bytes())
    msg = await w.result_message(inter)
    [job] = await w.jobs_final(1)
    return msg, job


def _no_history(d: FakeDiscord) -> None:
    """The bot may post in the guild's channel but not read its history (a server's overwrite)."""
    d.bot_channel_permissions[d.channel_id] = int(p.ALL_PERMISSIONS) & ~READ_MESSAGE_HISTORY


def _acknowledged_in_time(inter: FakeInteraction) -> bool:
    seconds = inter.ack_seconds
    return not inter.missed_deadline and seconds is not None and seconds < DISCORD_DEADLINE


# --- 1. replies need Read Message History -------------------------------------------------------


async def test_a_late_result_where_replies_are_not_allowed_is_posted_plainly(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as d:
        _no_history(d)  # the /remix interaction says so in its app_permissions
        async with running_world(tmp_path / "data", discord=d) as w:
            w.services.scheduler.pause(1.0)  # hold the job past the "15 minutes"
            inter = await w.slash_remix(png_bytes())
            await d.wait_for_call(
                lambda c: c.method == "GET" and c.path.endswith("/messages/@original"), within=5
            )
            d.expire_interaction(inter.token)  # the result now goes out with the bot token
            before = set(d.messages)
            post = await d.wait_for_message(lambda m: bool(m.attachments), after=before)
            assert post.webhook_id is None and post.reference is None
            assert post.content == f"<@{d.alice['id']}>"  # the mention says whose it is
            creates = d.calls_to("POST", rf"/channels/{d.channel_id}/messages")
            # Known from the interaction: no reply was even tried, so none was refused.
            assert [(c.status, "message_reference" in c.json) for c in creates] == [(200, False)]
            [job] = await w.jobs_final(1)
            assert job.state == "delivered" and int(post.id) in job.message_ids


async def test_a_reroll_whose_reply_is_refused_is_posted_plainly_and_once(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        d = w.discord
        msg, _ = await _result(w)
        _no_history(d)  # a reaction carries no permissions: Discord's refusal is the news
        await d.react(msg.id, "🔁", user=d.bob)
        _, reroll = await w.jobs_final(2)
        assert reroll.state == "delivered" and len(reroll.message_ids) == 1
        result = d.messages[str(reroll.message_ids[0])]
        assert result.attachments and result.reference is None
        assert result.content == f"<@{d.bob['id']}>"
        creates = d.calls_to("POST", rf"/channels/{d.channel_id}/messages")
        # The status reply was refused once and sent again plainly; the result went plainly.
        assert [(c.status, "message_reference" in c.json) for c in creates] == [
            (403, True),
            (200, False),
            (200, False),
        ]
        posted = [m for m in d.channel_messages() if m.attachments and m.id != msg.id]
        assert posted == [result]  # one result message, not two
        assert await w.books_balance() == []


# --- 2. the 3 seconds ----------------------------------------------------------------------------


async def test_command_permissions_are_fetched_at_ready_before_any_click(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        d = w.discord
        route = rf"/applications/{d.app_id}/guilds/{d.guild_id}/commands/permissions"
        await d.wait_until(lambda: d.calls_to("GET", route), 10, "the permissions at ready")
        assert d.interactions == {}


async def test_a_reroll_is_acknowledged_in_time_when_discord_and_the_gateway_are_slow(
    tmp_path: Path,
) -> None:
    async with running_world(tmp_path / "data") as w:
        d = w.discord
        msg, job = await _result(w)
        results: Any = w.bot.get_cog("Results")
        await asyncio.wait_for(results._warming, 10)
        results.access._guilds.clear()  # cold, as before the warm-up ended
        results.access._command = None
        d.ack_deadline = DISCORD_DEADLINE
        d.gateway_lag = 1.5  # the click reaches the bot 1.5 s after Discord made it
        d.delay("GET", r"/applications/\d+/commands", 1.5)
        d.delay("GET", r"/applications/\d+/guilds/\d+/commands/permissions", 1.5)
        # Checked before its answer, the click would take 1.5 s + 2 s (the permission fetch's
        # limit): past the deadline. The budget answers first and checks after.
        click = await d.click(msg.id, f"remix:reroll:{job.id}", user=d.bob)
        await w.result_message(click)
        assert _acknowledged_in_time(click), click
        _, reroll = await w.jobs_final(2)
        assert reroll.state == "delivered" and reroll.user_id == int(d.bob["id"])


async def test_a_host_clock_far_off_leaves_the_checks_their_budget(tmp_path: Path) -> None:
    # A host without NTP sees every interaction 30 s old (or from the future): counted from
    # Discord's timestamp alone, the budget would always be spent.
    for n, skew in enumerate((30.0, -30.0)):
        async with running_world(tmp_path / f"data{n}") as w:
            d = w.discord
            msg, job = await _result(w)
            d.clock_skew = skew
            edit = await d.click(msg.id, f"remix:edit:{job.id}", user=d.bob)
            await d.wait_until(lambda e=edit: e.modal, 10, "the Edit modal")
            await w.services.store.set_prompt_block(int(d.guild_id), "word", "cat")
            reroll = await d.click(msg.id, f"remix:reroll:{job.id}", user=d.bob)
            assert await w.private_answer(reroll) == REFUSED
            assert reroll.response_type == 4, skew  # refused at once, no "thinking…" first


async def test_show_and_admin_commands_answer_in_time_while_the_books_are_locked(
    tmp_path: Path,
) -> None:
    async with running_world(tmp_path / "data") as w:
        d = w.discord
        _, job = await _result(w)
        d.ack_deadline = DISCORD_DEADLINE
        # Another process holds SQLite's write lock for 3.5 s (within the busy timeout), so
        # every store call waits.
        holder = sqlite3.connect(w.settings.database, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(3.5, lambda: holder.execute("COMMIT"))
        release.start()
        try:
            # The grant's write waits for the lock on the store's one writer thread, and the
            # /show's reads queue behind it.
            grant = await d.slash(
                "remixadmin quota grant", {"member": d.bob, "images": 2}, user=d.owner
            )
            await d.wait_until(lambda: grant.response_type, 5, "the grant's acknowledgement")
            show = await d.slash("show", {"job": job.id})
            shown = await w.result_message(show)
            assert (await w.private_answer(grant)).startswith("Granted 2.")
        finally:
            release.join(10)
            holder.close()
        assert shown.attachments and not shown.ephemeral
        assert _acknowledged_in_time(show), show
        assert _acknowledged_in_time(grant), grant


# --- 3. the moderation log never holds up an answer ----------------------------------------------


async def test_a_slow_moderation_log_never_holds_up_the_member_or_the_admin(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as d:
        log = d.add_channel("mod-log")
        async with running_world(tmp_path / "data", discord=d) as w:
            guild = int(d.guild_id)
            await w.services.store.set_log_channel(guild, int(log))
            await w.services.store.set_prompt_block(guild, "word", "gore")
            d.ack_deadline = DISCORD_DEADLINE
            d.delay("POST", rf"/channels/{log}/messages", 4.0, times=5)  # a slow log channel
            refused = await w.slash_remix(png_bytes(), prompt="GORE please")
            assert await w.private_answer(refused) == REFUSED
            assert refused.response_type == 4 and _acknowledged_in_time(refused)
            block = await d.slash(
                "remixadmin quota block", {"member": d.bob, "reason": "spam"}, user=d.owner
            )
            assert (await w.private_answer(block)).startswith("Blocked")
            [answer] = [c for c in d.calls if c.method == "PATCH" and block.token in c.path]
            assert answer.at - block.created < 2.0  # the log post takes 4 s

            # Both still reach the log, in the background.
            def titles() -> set[str] | None:
                found = {e["title"] for m in d.channel_messages(log) for e in m.embeds}
                return found if len(found) == 2 else None

            logged = await d.wait_until(titles, 15, "both log entries")
            assert logged == {"Prompt refused", "Member blocked"}


# --- 4. no "first followup edits the thinking…" ----------------------------------------------------


async def test_answers_after_a_thinking_replace_it_without_followups(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        d = w.discord
        msg, job = await _result(w)
        asked = [
            await d.slash("quota"),
            await d.slash("jobs"),
            await d.click(msg.id, f"remix:dm:{job.id}", user=d.bob),
            await d.slash("remixadmin queue pause", user=d.owner),
            await d.slash("remixadmin queue resume", user=d.owner),
            await d.slash("remixadmin cancel", {"job": job.id}, user=d.owner),
            await d.slash("remixadmin usage", user=d.owner),
        ]
        for inter in asked:
            await w.private_answer(inter)
        for inter in asked:
            original = d.original(inter)
            assert original is not None and original.ephemeral and original.content, inter
            assert not original.loading, inter  # no "thinking…" left behind
        followups = [
            c
            for c in d.calls
            if c.method == "POST"
            and (m := re.fullmatch(r"/webhooks/\d+/(?P<token>[^/]+)", c.path))
            and m["token"] in {i.token for i in asked}
        ]
        assert followups == []


# --- 5. emoji with and without a variation selector ----------------------------------------------


async def test_reactions_count_with_or_without_the_variation_selector(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        d = w.discord
        msg, _ = await _result(w)
        await d.react(msg.id, "\u2709", user=d.bob)  # ✉ without U+FE0F, as some clients send it
        dm = await d.wait_until(lambda: d.dm_channels.get(d.bob["id"]), 10, "Bob's DM")
        [sent] = await d.wait_until(lambda: d.channel_messages(dm), 10, "the DM")
        assert len(sent.attachments) == 1
        await d.react(msg.id, "\u274c\ufe0f")  # ❌ with a selector the bot's own form lacks
        await d.wait_until(lambda: d.messages[msg.id].deleted, 10, "the delete")


# --- 6. the bot token uploads under the server's limit -------------------------------------------


async def test_a_late_result_is_fitted_to_the_servers_limit_not_the_interactions(
    tmp_path: Path,
) -> None:
    # A member with a bigger upload limit (Nitro): the interaction says 50 MiB, but the bot
    # token uploads under the server's 10 MiB (no boosts).
    async with FakeDiscord(attachment_size_limit=50 * MiB) as d:
        async with running_world(tmp_path / "data", discord=d) as w:
            # A photo-sized PNG of 11 MiB, made ahead (the fake caches it) so the fake backend
            # answers within the bot's time limit; seed 0 picks it.
            size = (3300, 2700)
            await asyncio.to_thread(photo_like, "PNG", size, 0)
            w.remix.result_size, w.remix.result_format = list(size), "PNG"
            w.services.scheduler.pause(1.0)  # hold the job past the "15 minutes"
            inter = await w.slash_remix(png_bytes(), seed=0)
            await d.wait_for_call(
                lambda c: c.method == "GET" and c.path.endswith("/messages/@original"), within=5
            )
            d.expire_interaction(inter.token)  # the result now goes out with the bot token
            [job] = await w.jobs_final(1, within=90)
            assert (job.state, job.images_delivered) == ("delivered", 1), job
            made = max(len(data) for data, _ in w.remix._images.values())
            assert made > d.guild_upload_limit == 10 * MiB
            uploads = [c for c in d.calls_to("POST", r"/channels/\d+/messages") if c.files]
            assert [c.status for c in uploads] == [200]  # fitted before the first try
            assert all(len(f.data) <= 10 * MiB for f in uploads[0].files)


# --- 7. a channel option offers only channels where commands run ----------------------------------


async def test_the_channel_list_offers_only_channels_members_run_commands_in(
    tmp_path: Path,
) -> None:
    async with running_world(tmp_path / "data") as w:
        [admin] = [c for c in w.discord.commands[None] if c["name"] == "remixadmin"]
        channels = next(o for o in admin["options"] if o["name"] == "channels")
        for name in ("add", "remove"):
            sub = next(o for o in channels["options"] if o["name"] == name)
            [option] = sub["options"]
            # Text, announcement, voice and stage chat, threads; never a category (4), a
            # forum (15) or a media channel (16), where no interaction comes from.
            assert sorted(option["channel_types"]) == [0, 2, 5, 10, 11, 12, 13], option

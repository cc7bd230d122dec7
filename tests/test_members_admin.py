"""/remixadmin: the server's admins run the bot from Discord, privately, through the same store
calls as `remixbot quota …`; only members with Manage Server may (checked at run time too)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.settings import load_settings
from bot.store.admin import run_with_store
from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes
from tests.fakediscord.models import ChannelRef, RoleRef
from tests.fakediscord.world import MANAGE_GUILD
from tests.remixworld import World, running_world


async def _admin(w: World, command: str, options: dict[str, Any] | None = None, **kw: Any) -> str:
    """Run `/remixadmin <command>` as the owner; the private answer."""
    inter = await w.discord.slash(
        f"remixadmin {command}", options, user=kw.pop("user", w.discord.owner), **kw
    )
    return await w.private_answer(inter)


async def test_only_server_managers_see_and_use_it(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        [synced] = [c for c in w.discord.commands[None] if c["name"] == "remixadmin"]
        assert str(synced["default_member_permissions"]) == str(MANAGE_GUILD)
        assert synced["contexts"] == [0]  # servers only
        groups = {o["name"] for o in synced["options"]}
        assert {"quota", "channels", "queue", "moderation", "cancel", "usage"} <= groups
        # A server can show the command to anyone; the bot checks again when it is used.
        answer = await _admin(w, "usage", user=w.discord.bob)
        assert answer == "You don't have permission to use this command here."
        await w.discord.give_role(w.discord.bob, "Admins", permissions=MANAGE_GUILD)
        assert "images delivered" in await _admin(w, "usage", user=w.discord.bob)
        assert all(m.ephemeral for m in w.discord.messages.values() if m.interaction_id)


async def test_quota_commands_use_the_same_books_as_the_cli(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_DEFAULT_LIMIT="2") as w:
        bob = w.discord.bob
        answer = await _admin(w, "quota grant", {"member": bob, "images": 5})
        assert answer.startswith(f"Granted 5. <@{bob['id']}> has **7** of 7 images left today")
        guild = int(w.discord.guild_id)
        status = await w.services.store.quota_status(int(bob["id"]), guild)
        assert (status.granted, status.remaining) == (5, 7)
        role = await w.discord.give_role(bob, "Patrons")
        answer = await _admin(w, "quota role", {"role": RoleRef(str(role)), "images": 20})
        assert answer == f"Members with <@&{role}> get 20 images per period."
        shown = await _admin(w, "quota show", {"member": bob})
        assert "has **25** of 25 images left today" in shown
        answer = await _admin(w, "quota server-limit", {"images": 10})
        assert "Members here get 10 images per period" in answer
        # The terminal (`remixbot quota …`) opens the same books and sees what Discord set.
        cli = load_settings(
            {
                **w.discord.env(),
                "REMIXBOT_DATA_DIR": str(w.settings.data_dir),
                "REMIXBOT_DEFAULT_LIMIT": "2",
            },
            dotenv=None,
        )
        seen = await asyncio.to_thread(
            run_with_store, cli, lambda s: s.quota_status(int(bob["id"]), guild, [role])
        )
        assert (seen.granted, seen.limit, seen.remaining) == (5, 20, 25)
        policies = await asyncio.to_thread(run_with_store, cli, lambda s: s.policies())
        assert policies.guilds == {guild: 10} and policies.roles == {(guild, role): 20}
        inter = await w.slash_remix(png_bytes(), user=bob)
        await w.result_message(inter)
        await w.jobs_final(1)  # charged once the books close, just after the post
        answer = await _admin(w, "quota reset", {"member": bob})
        assert "(0 used" in answer


async def test_block_and_unblock_reach_the_member_and_the_log(tmp_path: Path) -> None:
    async with FakeDiscord() as d:
        log = d.add_channel("mod-log")
        async with running_world(tmp_path / "data", discord=d) as w:
            answer = await _admin(w, "moderation log", {"channel": ChannelRef(log)})
            assert f"Moderation log: <#{log}>" in answer
            answer = await _admin(w, "quota block", {"member": d.bob, "reason": "spam"})
            assert answer == f"Blocked <@{d.bob['id']}> in this server: spam"
            await w.slash_remix(png_bytes(), user=d.bob)
            await d.wait_until(
                lambda: "You are blocked from remixing: spam." in w.ephemeral_replies(),
                10,
                "refusal",
            )
            entry = await d.wait_until(
                lambda: [e for m in d.channel_messages(log) for e in m.embeds], 10, "the log"
            )
            assert entry[0]["title"] == "Member blocked"
            assert {f["name"]: f["value"] for f in entry[0]["fields"]}[
                "By"
            ] == f"<@{d.owner['id']}>"
            assert (
                await _admin(w, "quota unblock", {"member": d.bob})
                == f"Unblocked <@{d.bob['id']}> in this server."
            )
            inter = await w.slash_remix(png_bytes(), user=d.bob)
            await w.result_message(inter)


async def test_channels_queue_cancel_usage_and_the_block_list(tmp_path: Path) -> None:
    async with FakeDiscord() as d:
        art = d.add_channel("art")
        async with running_world(tmp_path / "data", discord=d) as w:
            await _admin(w, "channels mode", {"mode": "allow"})
            answer = await _admin(w, "channels add", {"channel": ChannelRef(art)})
            assert f"/remix and its controls work in only in: <#{art}>" in answer
            await w.slash_remix(png_bytes())  # in #general: not on the allow list
            await d.wait_until(
                lambda: any("not allowed in this channel" in r for r in w.ephemeral_replies()),
                10,
                "the refusal",
            )
            inter = await d.slash(
                "remix",
                {"image": d.upload_attachment("a.png", png_bytes()), "prompt": "ok"},
                channel_id=art,
            )
            await w.result_message(inter)
            await _admin(w, "channels mode", {"mode": "all"})

            assert (await _admin(w, "queue pause")).startswith("Paused:")
            await w.slash_remix(png_bytes())
            await d.wait_until(
                lambda: any("paused on this server" in r for r in w.ephemeral_replies()),
                10,
                "paused",
            )
            assert await _admin(w, "queue resume") == "Resumed: members here can remix again."

            w.services.scheduler.pause(30.0)
            queued = await w.slash_remix(png_bytes(), user=d.bob)
            await d.wait_until(
                lambda: (m := d.original(queued)) and "Queued" in m.content, 10, "queued"
            )
            job = next(j for j in await w.services.store.list_jobs() if j.state == "queued")
            answer = await _admin(w, "cancel", {"job": job.id})
            assert answer == f"Cancelled job {job.id}; <@{d.bob['id']}> was not charged."
            assert (await w.services.store.find_job(job.id)).state == "cancelled"
            assert (
                await _admin(w, "cancel", {"job": 999999})
                == "There is no job 999999 in this server."
            )
            w.services.scheduler._resume()

            usage = await _admin(w, "usage")
            assert "**1** images delivered" in usage and f"1. <@{d.alice['id']}>: 1" in usage

            answer = await _admin(w, "moderation block", {"kind": "word", "text": "Gore"})
            assert "Blocked words: `gore`" in answer
            answer = await _admin(w, "moderation block", {"kind": "pattern", "text": "(oops"})
            assert answer.startswith("That pattern is not a valid regular expression")
            await w.slash_remix(png_bytes(), prompt="gore galore")
            await d.wait_until(
                lambda: any("does not allow" in r for r in w.ephemeral_replies()), 10, "blocked"
            )
            answer = await _admin(w, "moderation unblock", {"kind": "word", "text": "gore"})
            assert "Blocked words: none" in answer
            assert await w.books_balance() == []

"""A server's rules belong to that server: /remixadmin blocks a member in its own server only (the
bot's owner's block holds everywhere, and a server's admins cannot lift it), a server's limit
replaces the bot's default there (role tiers still raise a member), and pausing a server hands
its queued jobs back, refunded, with their members told; a job already at the backend finishes.
Each on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes
from tests.fakediscord.models import RoleRef
from tests.remixworld import World, running_world

pytestmark = pytest.mark.usefixtures("on_each_database")

OWNERS_BLOCK = (
    "is still blocked everywhere the bot is: that block was set by the bot's owner, and a "
    "server's admins cannot lift it."
)


async def _admin(w: World, command: str, options: dict[str, Any] | None = None, **kw: Any) -> str:
    """Run `/remixadmin <command>` as the owner (a server admin); the private answer."""
    inter = await w.discord.slash(
        f"remixadmin {command}", options, user=kw.pop("user", w.discord.owner), **kw
    )
    return await w.private_answer(inter)


async def _remix(w: World, user: dict[str, Any], channel: str | None = None, **options: Any) -> Any:
    """`user` runs /remix in `channel` (the first server's channel when None)."""
    d = w.discord
    att = d.upload_attachment("cat.png", png_bytes(), channel_id=channel)
    options = {"image": att, "prompt": "a watercolor cat", **options}
    return await d.slash("remix", options, user=user, channel_id=channel)


async def _refused(w: World, sentence: str) -> None:
    """Wait (bounded) for a private refusal containing `sentence`."""
    await w.discord.wait_until(
        lambda: any(sentence in r for r in w.ephemeral_replies()), 10, repr(sentence)
    )


async def test_a_servers_block_holds_there_only_and_the_owners_block_everywhere(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as d:
        _, chan_b = d.add_guild()  # server B; the members are in both
        async with running_world(tmp_path / "data", discord=d) as w:
            bob = d.bob["id"]
            answer = await _admin(w, "quota block", {"member": d.bob, "reason": "spam"})
            assert answer == f"Blocked <@{bob}> in this server: spam"
            await _remix(w, d.bob)
            await _refused(w, "You are blocked from remixing: spam.")
            # Server A's block is not server B's: Bob remixes there, and B's admins see no
            # block of theirs and have none to lift.
            await w.result_message(await _remix(w, d.bob, chan_b))
            shown = await _admin(w, "quota show", {"member": d.bob}, channel_id=chan_b)
            assert "Blocked" not in shown
            answer = await _admin(w, "quota unblock", {"member": d.bob}, channel_id=chan_b)
            assert answer == f"<@{bob}> was not blocked in this server."

            # The bot's owner blocks Bob everywhere (`remixbot quota block USER`).
            await w.services.store.block(int(bob), "abuse", guild_id=None)
            await _remix(w, d.bob, chan_b)
            await _refused(w, "You are blocked from remixing: abuse.")
            shown = await _admin(w, "quota show", {"member": d.bob})
            assert "Blocked everywhere by the bot's owner: abuse" in shown
            assert "Blocked in this server: spam" in shown
            # A server's admins cannot lift the owner's block: they are told whose it is.
            answer = await _admin(w, "quota unblock", {"member": d.bob}, channel_id=chan_b)
            assert answer == f"<@{bob}> was not blocked in this server. <@{bob}> {OWNERS_BLOCK}"
            answer = await _admin(w, "quota unblock", {"member": d.bob})
            assert answer == f"Unblocked <@{bob}> in this server. <@{bob}> {OWNERS_BLOCK}"
            blocks = await w.services.store.blocks(int(bob))
            assert [(b.guild_id, b.reason) for b in blocks] == [(None, "abuse")]
            before = len([r for r in w.ephemeral_replies() if "abuse" in r])
            await _remix(w, d.bob)
            await w.discord.wait_until(
                lambda: len([r for r in w.ephemeral_replies() if "abuse" in r]) > before,
                10,
                "the owner's block, still refusing in server A",
            )
            assert len(w.remix.api_requests()) == 1  # only the remix in server B ran
            assert await w.books_balance() == []


async def test_a_server_limit_below_the_default_applies_and_a_role_tier_raises_it(
    tmp_path: Path,
) -> None:
    async with running_world(tmp_path / "data", REMIXBOT_DEFAULT_LIMIT="20") as w:
        d = w.discord
        answer = await _admin(w, "quota server-limit", {"images": 5})
        assert answer == (
            "Members here get 5 images per period, in place of the bot's default (20 images "
            "daily); a role tier above it still raises a member."
        )
        shown = await _admin(w, "quota show", {"member": d.alice})
        assert f"<@{d.alice['id']}> has **5** of 5 images left today" in shown
        await w.result_message(await _remix(w, d.alice, num_images=4))
        await w.jobs_final(1)
        await _remix(w, d.alice, num_images=2)
        await _refused(w, "You have 1 of 5 images left today; this needs 2.")
        # A role tier above the server's limit raises the member above it.
        role = await d.give_role(d.alice, "Patrons")
        await _admin(w, "quota role", {"role": RoleRef(str(role)), "images": 8})
        shown = await _admin(w, "quota show", {"member": d.alice})
        assert "has **4** of 8 images left today" in shown
        await w.result_message(await _remix(w, d.alice, num_images=2))
        await w.jobs_final(2)
        assert await w.books_balance() == []


async def test_pausing_hands_back_the_queued_jobs_and_the_running_one_finishes(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as d:
        guild_b, chan_b = d.add_guild()
        async with running_world(tmp_path / "data", discord=d, REMIXBOT_INFLIGHT_IMAGES="1") as w:
            store = w.services.store
            w.remix.api_delay = 4.0  # Alice's job sits at the backend; the others queue
            running = await _remix(w, d.alice)
            await d.wait_until(lambda: w.remix.requests, 10, "the backend call")
            queued_a = await _remix(w, d.bob)
            queued_b = await _remix(w, d.owner, chan_b)
            for inter in (queued_a, queued_b):
                await d.wait_until(
                    lambda i=inter: (m := d.original(i)) and "Queued" in m.content, 10, "queued"
                )

            answer = await _admin(w, "queue pause")
            assert answer == (
                "Paused: new remixes here are refused until you resume. 1 queued remix handed "
                "back, refunded (their members were told); remixes already at the backend "
                "finish."
            )
            # Bob's job closed unstarted and refunded; his status message says why.
            jobs = {j.user_id: j for j in await store.list_jobs()}
            bobs = jobs[int(d.bob["id"])]
            assert bobs.state == "cancelled"
            status = await store.quota_status(bobs.user_id, bobs.guild_id)
            assert (status.used, status.reserved) == (0, 0)
            told = d.original(queued_a).content
            assert "paused on this server by its admins" in told
            assert "not started; you were not charged" in told

            # Another process on the same books pauses server B meanwhile: its queued job must
            # not start when its turn comes.
            await store.set_paused(int(guild_b), True)
            # Alice's job was at the backend when server A paused: it finishes and is posted.
            await w.result_message(running, within=20)
            [alices, owners] = [jobs[int(d.alice["id"])], jobs[int(d.owner["id"])]]
            final = {j.id: j for j in await w.jobs_final(3, within=20)}
            assert final[alices.id].state == "delivered"
            assert final[owners.id].state == "cancelled"
            told = await d.wait_until(
                lambda: (m := d.original(queued_b)) and "paused" in m.content and m.content,
                10,
                "the paused message in server B",
            )
            assert "not started; you were not charged" in told
            assert len(w.remix.api_requests()) == 1  # only Alice's job reached the backend
            assert await w.books_balance() == []

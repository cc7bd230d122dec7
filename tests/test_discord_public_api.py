"""What the fake does as real Discord does, seen through unmodified discord.py: the guild's roles
reach the bot's cache, and the bot token reaches the messages an interaction created."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import discord
import pytest

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes, running_bot


async def _roles_seen_in_an_interaction(fake: FakeDiscord, bot: discord.Client) -> list[str]:
    """The names discord.py's public `Member.roles` gives for Alice in a /probe interaction."""
    seen: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

    async def on_interaction(interaction: discord.Interaction) -> None:
        if isinstance(interaction.user, discord.Member) and not seen.done():
            seen.set_result([r.name for r in interaction.user.roles])

    bot.add_listener(on_interaction)
    try:
        await fake.slash("probe", {"image": fake.upload_attachment("a.png", png_bytes())})
        return await asyncio.wait_for(seen, 10)
    finally:
        bot.remove_listener(on_interaction)


async def test_member_roles_are_readable_through_the_public_api(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        # One role exists before the bot connects (GUILD_CREATE carries it), one is created
        # while it is connected (GUILD_ROLE_CREATE).
        await fake.give_role(fake.alice, "Patron")
        async with running_bot(fake, tmp_path) as bot:
            await fake.give_role(fake.alice, "Staff")
            names = await _roles_seen_in_an_interaction(fake, bot)
            assert names == ["@everyone", "Patron", "Staff"]
            guild = bot.get_guild(int(fake.guild_id))
            assert guild is not None
            member = await guild.fetch_member(int(fake.alice["id"]))
            assert [r.name for r in member.roles] == ["@everyone", "Patron", "Staff"]
            # A new session (after an invalid session) learns every role again from GUILD_CREATE.
            mark = len(fake.frames)
            await fake.invalidate_session(resumable=False)
            await fake.wait_identified(after=mark)
        guild_creates = [f.d for f in fake.frames if f.t == "GUILD_CREATE"]
        assert len(guild_creates) == 2
        for payload in guild_creates[1:]:
            assert [r["name"] for r in payload["roles"]] == ["@everyone", "Patron", "Staff"]


async def test_an_unannounced_role_is_an_opt_in_fault(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        await fake.give_role(fake.alice, "Patron")
        hidden = await fake.give_role(fake.alice, "Secret", announce=False)
        async with running_bot(fake, tmp_path) as bot:
            hidden_later = await fake.give_role(fake.alice, "Later", announce=False)
            # The member's payload carries the ids; the session was never told about the roles.
            assert await _roles_seen_in_an_interaction(fake, bot) == ["@everyone", "Patron"]
            guild = bot.get_guild(int(fake.guild_id))
            assert guild is not None
            assert guild.get_role(hidden) is None and guild.get_role(hidden_later) is None
        assert not any(
            f.t == "GUILD_ROLE_CREATE" and f.d["role"]["name"] in ("Secret", "Later")
            for f in fake.frames
        )


async def test_after_a_restart_the_bot_token_edits_and_replies_to_a_deferred_response(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as fake:
        async with running_bot(fake, tmp_path):
            inter = await fake.slash(
                "probe", {"image": fake.upload_attachment("a.png", png_bytes())}
            )
            original = await fake.wait_for_message(lambda m: m.interaction_id == inter.id)
        # A new process holds no interaction token (and this one has expired): only the ids.
        fake.advance_time(16 * 60)
        async with running_bot(fake, tmp_path) as bot:
            channel = bot.get_partial_messageable(int(fake.channel_id))
            mark = len(fake.calls)
            edited = await channel.get_partial_message(int(original.id)).edit(
                content="Queued: you are number 2", view=None
            )
            assert edited.author.id == bot.user.id  # type: ignore[union-attr]
            fetched = await channel.fetch_message(int(original.id))
            assert fetched.content == "Queued: you are number 2" and fetched.components == []
            reply = await fetched.reply(
                "Here it is", file=discord.File(io.BytesIO(png_bytes()), "r.png")
            )
            assert reply.reference is not None and reply.reference.message_id == int(original.id)
        path = rf"/channels/{fake.channel_id}/messages(/{original.id})?"
        used = [c for c in fake.calls[mark:] if re.fullmatch(path, c.path)]
        assert [c.method for c in used] == ["PATCH", "GET", "POST"]
        assert all(c.headers["Authorization"] == f"Bot {fake.token}" for c in used)
        assert all(c.status == 200 for c in used)
        stored = fake.messages[str(reply.id)]
        assert (stored.reference, stored.type, len(stored.attachments)) == (original.id, 19, 1)
        assert fake.messages[original.id].content == "Queued: you are number 2"


async def test_the_bot_token_never_reaches_an_ephemeral_response(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path) as bot:
        inter = await fake.slash("fail", {"kind": "invalid"})  # answered privately
        private = await fake.wait_for_message(lambda m: m.interaction_id == inter.id)
        assert private.ephemeral
        channel = bot.get_partial_messageable(int(fake.channel_id))
        with pytest.raises(discord.NotFound):
            await channel.fetch_message(int(private.id))
        with pytest.raises(discord.NotFound):
            await channel.get_partial_message(int(private.id)).edit(content="changed")
        with pytest.raises(discord.HTTPException) as refused:
            await channel.get_partial_message(int(private.id)).reply("a reply")
        assert (refused.value.status, refused.value.code) == (400, 50035)
        # A reply that may lose its target is posted as a plain message.
        gone = discord.MessageReference(
            message_id=int(private.id), channel_id=int(fake.channel_id), fail_if_not_exists=False
        )
        plain = await channel.send("results", reference=gone)
        assert plain.reference is None and fake.messages[str(plain.id)].type == 0
        assert private.content.startswith("strength must be")

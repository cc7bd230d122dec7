"""What every entry point checks before any work: who is asking (roles, permissions), whether the
bot can post here, whether a control's job belongs to the message it was pressed on, and the
refusals known at once (answered privately, before a public defer)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from bot.errors import RemixbotError
from bot.store import Job, Store
from bot.workflow import RemixService, Requester
from cogs._publish import ChannelPresenter, InteractionPresenter
from cogs._render import GENERIC_FAILURE, error_sentence, public_sentence

log = logging.getLogger(__name__)

# The most the pre-defer checks may take of the 3 s Discord gives the first response.
PRECHECK_SECONDS = 1.0


def member_or_dm(command: Any) -> Any:
    """Usable in servers and in a DM with the bot (an app installed to servers)."""
    command = app_commands.allowed_installs(guilds=True, users=False)(command)
    return app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)(command)


def roles_of(user: discord.abc.User | discord.Member | None) -> tuple[int, ...]:
    """The member's role ids (none outside a guild); Discord announces every role of a guild in
    GUILD_CREATE and keeps them current, so discord.py's public `Member.roles` has them all."""
    if not isinstance(user, discord.Member):
        return ()
    return tuple(r.id for r in user.roles if not r.is_default())


def too_big(attachment: discord.Attachment, limit: int, what: str) -> str | None:
    """One sentence when an attachment is over the size limit (from Discord's metadata)."""
    if attachment.size > limit:
        return f"The {what} is {attachment.size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB."
    return None


def missing_permissions(interaction: discord.Interaction) -> str | None:
    """One sentence when the bot cannot post images where the interaction came from."""
    perms = interaction.app_permissions
    if perms.value == 0:
        # Not sent (component interactions may omit app_permissions): unknown, not "none".
        # Posting will tell if something is missing.
        return None
    missing = [
        name
        for name, ok in (("Attach Files", perms.attach_files), ("Embed Links", perms.embed_links))
        if not ok
    ]
    # Results after the 15-minute token and 🔁 rerolls are posted as ordinary messages.
    in_thread = isinstance(interaction.channel, discord.Thread)
    if interaction.guild_id is not None:
        if in_thread and not perms.send_messages_in_threads:
            missing.append("Send Messages in Threads")
        elif not in_thread and not perms.send_messages:
            missing.append("Send Messages")
    if missing:
        return (
            "I can't post images in this channel: I'm missing "
            f"{', '.join(missing)}; ask a server admin to grant them."
        )
    return None


def interaction_requester(
    interaction: discord.Interaction, request_message_id: int | None = None
) -> Requester:
    """Who asked, from an interaction (DMs: no guild, no roles)."""
    return Requester(
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        role_ids=roles_of(interaction.user),
        interaction_id=interaction.id,
        request_message_id=request_message_id,
    )


def can_manage_messages(interaction: discord.Interaction) -> bool:
    """True for a member with Manage Messages here (Discord computes it with the channel's
    overwrites and sends it with the interaction)."""
    return interaction.guild_id is not None and interaction.permissions.manage_messages


def is_admin(interaction: discord.Interaction) -> bool:
    """True for a server admin (Manage Server): the admin commands and cancelling any job."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


async def job_here(
    store: Store,
    job_id: int,
    guild_id: int | None,
    channel_id: int | None,
    message_id: int | None,
) -> Job | None:
    """The job a control names, if it belongs where the control was pressed: one of its own
    messages (results, /show posts), or its guild and channel. Anything else (a custom id
    naming another server's job) is None, and the control does nothing."""
    job = await store.find_job(job_id)
    if job is None:
        return None
    if message_id is not None:
        owner = await store.job_for_message(message_id)
        if owner is not None and owner.id == job.id:
            return job
    if job.guild_id != guild_id:
        return None
    return job if channel_id in (job.channel_id, job.message_channel_id) else None


async def refused_early(
    interaction: discord.Interaction,
    remix: RemixService,
    images: int | Callable[[], Awaitable[int]],
    prompt: str | None = None,
) -> bool:
    """Answer privately, before the defer, the refusals known at once (the server's channel
    list, pause and block list, queue room, block, quota); True if refused. After a public
    defer Discord has no private answer left."""
    who = Requester(
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        role_ids=roles_of(interaction.user),
    )
    try:
        # Bounded: the 3-second deadline of the first response comes first. If the store is
        # slow (another process holds its lock), reserving checks the same things later.
        async with asyncio.timeout(PRECHECK_SECONDS):
            count = images if isinstance(images, int) else await images()
            await remix.precheck(who, count, prompt)
    except RemixbotError as exc:
        await interaction.response.send_message(error_sentence(exc), ephemeral=True)
        return True
    except TimeoutError:
        log.info("the pre-check took over %gs; checking when reserving", PRECHECK_SECONDS)
    return False


async def refuse_after_defer(
    presenter: InteractionPresenter | ChannelPresenter, exc: Exception, what: str
) -> None:
    """Replace the 'thinking…' (or the 🔁 status reply) with why nothing runs (nothing was
    charged). After a public defer Discord has no private answer left, so a block's reason is
    not shown here."""
    if isinstance(exc, RemixbotError):
        sentence = public_sentence(exc)
    else:
        log.error("%s failed before the job was queued", what, exc_info=exc)
        sentence = GENERIC_FAILURE
    try:
        await presenter.say(sentence, warn=False)
    except Exception:
        log.info("could not tell a member why their request was refused")

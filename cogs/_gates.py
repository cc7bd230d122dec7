"""What every entry point checks before any work: who is asking (roles, permissions), whether the
bot can post here, whether a control's job belongs to the message it was pressed on, and the
refusals known at once (answered privately, before a public defer); and the time all of that
may take before Discord's 3-second deadline (`acknowledge`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import discord
from discord import app_commands

from bot.errors import RemixbotError
from bot.store import Job, Store
from bot.workflow import RemixService, Requester
from cogs._publish import ChannelPresenter, InteractionPresenter
from cogs._render import GENERIC_FAILURE, error_sentence, public_sentence

log = logging.getLogger(__name__)

# Discord drops an interaction that is not acknowledged within 3 s of its creation ("This
# interaction failed", 10062). Everything an entry point checks before acknowledging shares this
# budget, counted from the interaction's own timestamp, so the time it spent on the gateway and
# waiting for our event loop counts too; the second left over is for the acknowledgement's own
# round trip and a busy loop. Checks not done by then finish after the acknowledgement.
ACK_BUDGET_SECONDS = 2.0
DISCORD_DEADLINE_SECONDS = 3.0
# Where budget_left notes when this process first saw an interaction (its `extras`).
_FIRST_SEEN = "remixbot.first_seen"
# The most the quota and server-rule pre-check may take (past it, reserving checks the same).
PRECHECK_SECONDS = 1.0

T = TypeVar("T")
A = TypeVar("A")


@dataclass(frozen=True)
class Refusal:
    """A gate's answer instead of the work: one sentence for the member alone, or (`QUIET`)
    none at all, for a control pressed on a message its job does not belong to."""

    sentence: str


QUIET = Refusal("")


def budget_left(interaction: discord.Interaction) -> float:
    """Seconds left of the acknowledgement budget (0 once spent)."""
    seen = interaction.extras.setdefault(_FIRST_SEEN, time.monotonic())
    elapsed = (discord.utils.utcnow() - interaction.created_at).total_seconds()
    if not 0.0 <= elapsed <= DISCORD_DEADLINE_SECONDS:
        # An interaction still answerable is never from the future nor past Discord's deadline:
        # the host's clock is off (no NTP, a laptop after sleep). Count from when it was first
        # seen here instead, or every check would find its budget spent.
        elapsed = time.monotonic() - seen
    return max(0.0, ACK_BUDGET_SECONDS - elapsed)


async def acknowledge(
    interaction: discord.Interaction,
    gates: Awaitable[Refusal | T],
    defer: Callable[[], Awaitable[A]],
) -> tuple[A, T] | None:
    """Run an entry point's checks within the acknowledgement budget, then answer: a refusal
    privately (QUIET: a silent acknowledgement), or `defer()` and what the checks found. When
    the budget runs out first, `defer()` goes first and the checks finish after it, each within
    its own limit; a refusal then replaces the "thinking…" (deleted) with a private message.
    None when refused."""
    checking = asyncio.ensure_future(gates)
    try:
        verdict = await asyncio.wait_for(asyncio.shield(checking), budget_left(interaction))
    except TimeoutError:
        log.info("interaction %s: checks outlasted the budget; acknowledged first", interaction.id)
        try:
            acknowledged = await defer()
        except BaseException:
            checking.cancel()
            raise
        try:
            verdict = await checking
        except Exception:
            log.exception("interaction %s: the checks failed", interaction.id)
            verdict = Refusal(GENERIC_FAILURE)
        if isinstance(verdict, Refusal):
            await _withdraw(interaction, verdict)
            return None
        return acknowledged, verdict
    except BaseException:
        checking.cancel()
        raise
    if isinstance(verdict, Refusal):
        if verdict.sentence:
            await interaction.response.send_message(verdict.sentence, ephemeral=True)
        else:
            await interaction.response.defer()  # a control: the message stays as it is
        return None
    return await defer(), verdict


async def _withdraw(interaction: discord.Interaction, refusal: Refusal) -> None:
    """A refusal found after the acknowledgement: the "thinking…" goes (never the pressed
    message itself, after a plain component defer), and the sentence comes privately."""
    try:
        if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            with contextlib.suppress(discord.NotFound):
                await interaction.delete_original_response()
    except discord.HTTPException as exc:  # the sentence still goes, on its own
        log.info("could not take back a refused request's thinking… (HTTP %s)", exc.status)
    try:
        if refusal.sentence:
            await interaction.followup.send(refusal.sentence, ephemeral=True)
    except discord.HTTPException as exc:
        log.info("could not tell a member why their request was refused (HTTP %s)", exc.status)


async def within_budget(interaction: discord.Interaction, work: Awaitable[T]) -> T:
    """`work`, bounded by what is left of the acknowledgement budget (TimeoutError past it), for
    a response that must come first (a modal), so nothing can be deferred."""
    async with asyncio.timeout(budget_left(interaction)):
        return await work


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


async def precheck_refusal(
    interaction: discord.Interaction,
    remix: RemixService,
    images: int,
    prompt: str | None = None,
    *,
    within: float = PRECHECK_SECONDS,
) -> Refusal | None:
    """The refusals known at once (the server's channel list, pause and block list, queue room,
    block, quota), said privately; None to go on. Bounded: if the store is slow (another
    process holds its lock), reserving checks the same things later."""
    who = Requester(
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        role_ids=roles_of(interaction.user),
    )
    try:
        async with asyncio.timeout(within):
            await remix.precheck(who, images, prompt)
    except RemixbotError as exc:
        return Refusal(error_sentence(exc))
    except TimeoutError:
        log.info("the pre-check took over %.1fs; checking when reserving", within)
    return None


async def refused_early(
    interaction: discord.Interaction,
    remix: RemixService,
    images: int,
    prompt: str | None = None,
) -> bool:
    """For a response that must come first (a modal): answer the pre-check's refusal
    privately, within what is left of the acknowledgement budget; True if refused."""
    within = min(PRECHECK_SECONDS, budget_left(interaction))
    refusal = await precheck_refusal(interaction, remix, images, prompt, within=within)
    if refusal is not None:
        await interaction.response.send_message(refusal.sentence, ephemeral=True)
    return refusal is not None


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

"""The result controls and finding a job again: Reroll, Retry, Edit, Vary, Delete, DM and
Cancel (the handlers the controls of cogs/_controls.py call), the 🔁 ❌ ✉️ reactions, /jobs and
/show.

Every control names its job in its custom id and reads the rest from the store, so it works
after a restart. A control pressed on a message its job does not belong to does nothing; one
pressed by someone it is not for gets a private sentence. Anything that starts a job passes the
same gates as /remix first (/remix's command permissions, the server's channel list, pause and
block list, queue room, block, quota), so a refused control costs no work. The gates share the
acknowledgement budget (cogs/_gates.py `acknowledge`): what they have not decided by then is
decided after the "thinking…".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Range
from discord.ext import commands

from bot.client import RemixBot
from bot.errors import RemixbotError
from bot.lifecycle import Presenter
from bot.moderation import ChannelClosed
from bot.remix.request import RemixRequest
from bot.store import Job
from bot.workflow import NotYourJob, Requester
from cogs._access import NOT_ALLOWED, CommandAccess
from cogs._actions import delete_result, dm_refused, send_by_dm, show_job
from cogs._audit import AuditPoster
from cogs._base import ServicesCog
from cogs._controls import DYNAMIC_ITEMS, EDIT_MODAL, modal_fields, prompt_modal
from cogs._gates import (
    QUIET,
    Refusal,
    acknowledge,
    can_manage_messages,
    interaction_requester,
    is_admin,
    job_here,
    member_or_dm,
    missing_permissions,
    precheck_refusal,
    refuse_after_defer,
    roles_of,
    within_budget,
)
from cogs._publish import ChannelPresenter
from cogs._render import GENERIC_FAILURE, error_sentence, public_sentence
from cogs._ui import DELETE_EMOJI, DM_EMOJI, REROLL_EMOJI, emoji_key, jobs_lines

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

# One refusal reply per member per this many seconds for reactions (a reaction has no private
# answer; a blocked member reacting to ten results gets one reply, not ten).
REFUSAL_REPLY_SECONDS = 60.0
JOBS_LISTED = 10

NOT_HERE_TO_DELETE = (
    "Only the member who asked for this remix, or someone with Manage Messages, can delete it."
)
NOT_HERE_TO_CANCEL = "Only the member who asked for this remix, or a server admin, can cancel it."
NOT_YOURS_TO_SHOW = "You can show only your own remixes; /jobs lists them."
LOOKUP_TOO_SLOW = "I couldn't look that remix up in time; press the button again."
REACTIONS = {emoji_key(e): e for e in (REROLL_EMOJI, DELETE_EMOJI, DM_EMOJI)}


@dataclass(frozen=True)
class _Start:
    """What a control starts once its gates pass: the images and prompt they were checked
    for, and the job's start."""

    images: int
    prompt: str
    start: Callable[[Requester, Presenter], Awaitable[object]]


class Results(ServicesCog):
    """The controls under results and progress messages, the reactions, /jobs and /show."""

    def __init__(self, bot: RemixBot, services: Services | None) -> None:
        super().__init__(bot, services)
        self.access = CommandAccess(bot)
        self._refusals: dict[int, float] = {}
        self._warming: asyncio.Task[None] | None = None

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Fetch /remix's command permissions in the background, so a first click has them."""
        if self._warming is None or self._warming.done():
            guilds = [g.id for g in self.bot.guilds]
            self._warming = asyncio.create_task(self.access.warm(guilds), name="warm-access")

    async def cog_unload(self) -> None:
        """Stop fetching ahead."""
        if self._warming is not None:
            self._warming.cancel()

    async def _command_refusal(self, interaction: discord.Interaction) -> Refusal | None:
        """A control starting a job where the member may not use /remix: refused privately."""
        if await self.access.allowed(
            interaction.guild_id,
            interaction.channel_id,
            interaction.user,
            interaction.permissions.value,
        ):
            return None
        return Refusal(NOT_ALLOWED)

    async def _here(self, interaction: discord.Interaction, job_id: int) -> Job | None:
        """The control's job, if it belongs where the control was pressed (else None)."""
        message = interaction.message.id if interaction.message is not None else None
        return await job_here(
            self.services.store, job_id, interaction.guild_id, interaction.channel_id, message
        )

    async def _job_for(
        self, interaction: discord.Interaction, job_id: int, anyone: bool, refusal: str = ""
    ) -> Refusal | Job:
        """The gates of a control that starts no job: its job here (else nothing happens), for
        its member, or for anyone when `anyone` (else `refusal`, privately)."""
        job = await self._here(interaction, job_id)
        if job is None:
            return QUIET
        if job.user_id != interaction.user.id and not anyone:
            return Refusal(refusal)
        return job

    async def _private_thinking(self, interaction: discord.Interaction) -> None:
        """The member's own "thinking…" (a control answered to them alone)."""
        await interaction.response.defer(ephemeral=True, thinking=True)

    # --- /jobs, /show -------------------------------------------------------------------

    @member_or_dm
    @app_commands.command(name="jobs", description="List your recent remixes (only you see it)")
    async def jobs(self, interaction: discord.Interaction) -> None:
        """Your recent remixes: id, state, when, prompt and a jump link."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self.services.store.list_jobs(user_id=interaction.user.id, limit=JOBS_LISTED)
        await interaction.edit_original_response(
            content=jobs_lines(found), allowed_mentions=discord.AllowedMentions.none()
        )

    @member_or_dm
    @app_commands.command(name="show", description="Post one of your remixes again, with controls")
    @app_commands.describe(job="The job id (from /jobs or a result's footer)")
    async def show(self, interaction: discord.Interaction, job: Range[int, 1]) -> None:
        """Recreate a job's result and controls here (Midjourney's /show)."""

        async def gates() -> Refusal | Job:
            found = await self.services.store.find_job(job)
            if found is None or found.user_id != interaction.user.id:
                return Refusal(NOT_YOURS_TO_SHOW)
            if found.state != "delivered":
                return Refusal(f"That remix is {found.state}; only finished remixes can be shown.")
            problem = missing_permissions(interaction) or await self._channel_closed(interaction)
            return Refusal(problem) if problem else found

        answered = await acknowledge(
            interaction, gates(), lambda: interaction.response.defer(thinking=True)
        )
        if answered is None:
            return
        _, found = answered
        try:
            await show_job(interaction, self.services.pool, self.services.store, found)
        except Exception:
            log.exception("/show of job %s failed", found.id)
            await interaction.edit_original_response(content=GENERIC_FAILURE)

    async def _channel_closed(self, interaction: discord.Interaction) -> str | None:
        """The server's channel list refusal, if this channel is not open to the controls."""
        rules = await self.remix_service.moderation.rules(interaction.guild_id)
        if rules is not None and not rules.channel_allowed(interaction.channel_id):
            return error_sentence(ChannelClosed())
        return None

    # --- rerolls, retries, edits, variations ------------------------------------------------

    async def _start_from_control(
        self,
        interaction: discord.Interaction,
        job_id: int,
        *,
        repeat: Hashable | None,
        busy: str,
        plan: Callable[[Job], Refusal | _Start],
    ) -> None:
        """The one path of every control that starts a job (Reroll, Retry, Edit, Vary): the
        control's job here (else nothing happens), then the gates /remix has, answered
        privately (`plan`'s own refusal, the bot's permissions here, a repeat within the
        double-tap window, /remix's command permissions, the server's rules, block, quota),
        all within the acknowledgement budget; then a public "thinking…" (a new message) and
        the job, charged to whoever pressed."""
        svc = self.remix_service

        async def gates() -> Refusal | tuple[Job, _Start]:
            job = await self._here(interaction, job_id)
            if job is None:
                return QUIET  # not this message's job: nothing happens
            planned = plan(job)
            if isinstance(planned, Refusal):
                return planned
            problem = missing_permissions(interaction)
            if problem:
                return Refusal(problem)
            if repeat is not None and not svc.repeats.first(repeat, interaction.user.id):
                return Refusal(busy)
            refusal = await self._command_refusal(interaction) or await precheck_refusal(
                interaction, svc, planned.images, planned.prompt
            )
            return refusal or (job, planned)

        answered = await acknowledge(interaction, gates(), lambda: self._thinking(interaction))
        if answered is None:
            return
        presenter, (job, planned) = answered
        who = interaction_requester(interaction, presenter.original_id)
        try:
            await planned.start(who, presenter)
        except Exception as exc:
            await refuse_after_defer(presenter, exc, f"a control on job {job.id}")

    async def again_from_button(
        self, interaction: discord.Interaction, job_id: int, *, retry: bool
    ) -> None:
        """Reroll (new seed) or Retry (same job) ``job_id`` for whoever clicked, as a new message."""
        svc = self.remix_service
        verb = "retrying" if retry else "rerolling"

        async def start(who: Requester, presenter: Presenter) -> object:
            if retry:
                return await svc.retry(who, job_id, presenter)
            return await svc.reroll(who, job_id, presenter)

        def plan(parent: Job) -> Refusal | _Start:
            if retry and parent.user_id != interaction.user.id:
                return Refusal(error_sentence(NotYourJob()))
            prompt = str(parent.request.get("prompt", ""))
            return _Start(parent.images_requested, prompt, start)

        await self._start_from_control(
            interaction,
            job_id,
            repeat=interaction.message.id if interaction.message else job_id,
            busy=f"You're already {verb} this one; the result will appear below.",
            plan=plan,
        )

    async def open_edit(self, interaction: discord.Interaction, job_id: int) -> None:
        """Edit: a modal pre-filled with the job's prompt, negative prompt and image weight (a
        modal must be the first answer: the lookup gets what is left of the budget)."""
        try:
            job = await within_budget(interaction, self._here(interaction, job_id))
        except TimeoutError:
            await interaction.response.send_message(LOOKUP_TOO_SLOW, ephemeral=True)
            return
        if job is None:
            await interaction.response.defer()
            return
        request = RemixRequest.from_dict(job.request)
        modal = prompt_modal(
            "Edit and remix",
            f"remix:editmodal:{job.id}",
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or "",
            image_weight=request.image_weight,
        )
        await interaction.response.send_modal(modal)

    async def _edit_submitted(self, interaction: discord.Interaction, job_id: int) -> None:
        """The Edit modal came back: a new job on the stored input, charged to the member."""
        svc = self.remix_service
        fields = modal_fields(interaction)

        def plan(job: Job) -> Refusal | _Start:
            try:
                request = svc.edited_request(
                    RemixRequest.from_dict(job.request),
                    fields.prompt,
                    fields.negative_prompt,
                    fields.image_weight,
                )
            except RemixbotError as exc:
                return Refusal(error_sentence(exc))
            return _Start(
                request.num_images,
                request.prompt,
                lambda who, presenter: svc.edit(
                    who,
                    job.id,
                    presenter,
                    prompt=request.prompt,
                    negative_prompt=request.negative_prompt,
                    image_weight=request.image_weight,
                ),
            )

        await self._start_from_control(
            interaction,
            job_id,
            repeat=None,  # each submission is its own interaction: replays are caught by its id
            busy="",
            plan=plan,
        )

    async def vary_from_select(
        self, interaction: discord.Interaction, job_id: int, index: int, strength: str
    ) -> None:
        """Vary: the chosen result image becomes the input of a new job, charged to the member."""
        svc = self.remix_service
        message_id = interaction.message.id if interaction.message else job_id

        def plan(job: Job) -> _Start:
            return _Start(
                job.images_requested,
                str(job.request.get("prompt", "")),
                lambda who, presenter: svc.vary(who, job.id, index, strength, presenter),
            )

        await self._start_from_control(
            interaction,
            job_id,
            repeat=hash((message_id, index, strength)),
            busy="You're already varying this one; the result will appear below.",
            plan=plan,
        )

    # --- delete, DM, cancel ------------------------------------------------------------------

    async def delete_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Delete the result (requester or Manage Messages); the books are untouched."""
        gates = self._job_for(
            interaction, job_id, can_manage_messages(interaction), NOT_HERE_TO_DELETE
        )
        answered = await acknowledge(interaction, gates, interaction.response.defer)
        if answered is None:
            return
        _, job = answered
        message = interaction.message.id if interaction.message else None
        await delete_result(self.bot, job, interaction.channel_id or 0, message)

    async def dm_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Send the images and the job's details to whoever clicked, by DM."""
        answered = await acknowledge(
            interaction,
            self._job_for(interaction, job_id, True),
            lambda: self._private_thinking(interaction),
        )
        if answered is None:
            return
        _, job = answered
        try:
            await send_by_dm(
                self.bot, self.services.pool, self.services.store, interaction.user.id, job
            )
            text = f"{DM_EMOJI} Sent to your DMs."
        except discord.HTTPException as exc:
            if not dm_refused(exc):
                log.warning("could not DM job %s (HTTP %s)", job.id, exc.status)
            text = (
                "I can't DM you: your DMs are closed to me. Allow direct messages from this "
                "server's members and try again."
                if dm_refused(exc)
                else GENERIC_FAILURE
            )
        await interaction.edit_original_response(content=text)

    async def cancel_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Cancel a queued job (requester or admin): refunded at once; a running one goes on."""
        answered = await acknowledge(
            interaction,
            self._job_for(interaction, job_id, is_admin(interaction), NOT_HERE_TO_CANCEL),
            lambda: self._private_thinking(interaction),
        )
        if answered is None:
            return
        _, job = answered
        own = job.user_id == interaction.user.id
        try:
            await self.remix_service.cancel(job.id, interaction.user.id if own else None)
            text = "Cancelled; " + ("you were" if own else "its member was") + " not charged."
        except RemixbotError as exc:
            text = error_sentence(exc)
        await interaction.edit_original_response(content=text)

    # --- the Edit modal, reactions ---------------------------------------------------------

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """The Edit modal's submissions, by custom id (nothing about them is kept in memory)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if match := EDIT_MODAL.fullmatch(custom_id):
            await self._edit_submitted(interaction, int(match["job"]))

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """🔁 rerolls a result for the reactor, ❌ deletes it (requester or Manage Messages),
        ✉️ sends it by DM (raw event: works on uncached messages and after a restart). Clients
        may send an emoji with or without its variation selector: both forms count."""
        emoji = REACTIONS.get(emoji_key(str(payload.emoji)))
        if emoji is None:
            return
        if payload.user_id == getattr(self.bot.user, "id", None):
            return
        if payload.member is not None and payload.member.bot:
            return
        if emoji == REROLL_EMOJI:
            await self._reroll_reaction(payload)
            return
        job = await self.services.store.job_for_message(payload.message_id)
        if job is None:
            return
        if emoji == DELETE_EMOJI:
            if payload.user_id == job.user_id or self._manages_messages(payload):
                await delete_result(self.bot, job, payload.channel_id, payload.message_id)
        else:
            try:
                await send_by_dm(
                    self.bot, self.services.pool, self.services.store, payload.user_id, job
                )
            except discord.HTTPException as exc:  # a reaction has no private answer to give
                log.info("could not DM job %s to a member (HTTP %s)", job.id, exc.status)

    def _permissions(self, payload: discord.RawReactionActionEvent) -> int:
        """The reacting member's permissions in the reaction's channel (0 outside a guild)."""
        member = payload.member
        if member is None:
            return 0
        channel = self.bot.get_channel(payload.channel_id)
        if isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            return channel.permissions_for(member).value
        return member.guild_permissions.value

    def _manages_messages(self, payload: discord.RawReactionActionEvent) -> bool:
        """True for a member with Manage Messages in the reaction's channel."""
        return discord.Permissions(self._permissions(payload)).manage_messages

    async def _reroll_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """🔁: the same gates as /remix first (no status message, no work when refused)."""
        svc = self.remix_service
        if not svc.repeats.first(payload.message_id, payload.user_id):
            return
        job = await self.services.store.job_for_message(payload.message_id)
        if job is None:
            return
        presenter = ChannelPresenter(
            self.bot,
            payload.channel_id,
            payload.message_id,
            payload.user_id,
            self.services.pool,
            self.controls,
        )
        who = Requester(
            user_id=payload.user_id,
            guild_id=payload.guild_id,
            channel_id=payload.channel_id,
            role_ids=roles_of(payload.member),
            request_message_id=payload.message_id,
        )
        try:
            if not await self.access.allowed(
                payload.guild_id, payload.channel_id, payload.member, self._permissions(payload)
            ):
                raise CommandNotAllowed(NOT_ALLOWED)
            await svc.precheck(who, job.images_requested, str(job.request.get("prompt", "")))
        except RemixbotError as exc:
            await self._refuse_reaction(presenter, payload.user_id, exc)
            return
        # A reaction carries no app_permissions: post the status reply first, so a channel the
        # bot cannot post in costs nothing (no reservation, no paid backend call).
        try:
            await presenter.announce(f"{REROLL_EMOJI} Rerolling…")
        except discord.HTTPException as exc:
            log.info("not rerolling in channel %s: cannot post there (%s)", payload.channel_id, exc)
            return
        try:
            await svc.reroll(who, job.id, presenter)
        except Exception as exc:
            await refuse_after_defer(presenter, exc, "a 🔁 reroll")

    async def _refuse_reaction(
        self, presenter: ChannelPresenter, user_id: int, exc: RemixbotError
    ) -> None:
        """At most one short reply per member a minute (a reaction has no private answer)."""
        now = asyncio.get_running_loop().time()
        if now - self._refusals.get(user_id, -REFUSAL_REPLY_SECONDS) < REFUSAL_REPLY_SECONDS:
            return
        for old in [u for u, at in self._refusals.items() if now - at >= REFUSAL_REPLY_SECONDS]:
            del self._refusals[old]
        self._refusals[user_id] = now
        try:
            await presenter.say(public_sentence(exc), warn=False)
        except discord.HTTPException:
            log.info("could not tell a member why their 🔁 was refused")


class CommandNotAllowed(RemixbotError):
    """The server's command permissions do not let the member use /remix here."""


async def setup(bot: commands.Bot) -> None:
    """Load the cog and register the controls (DynamicItems: they need no state to rebuild)."""
    if not isinstance(bot, RemixBot):
        raise RuntimeError("cogs.results runs on bot.client.RemixBot")
    await bot.add_cog(Results(bot, bot.services))
    bot.add_dynamic_items(*DYNAMIC_ITEMS)
    if bot.services is not None:  # moderation events go to each server's log channel
        bot.services.remix.moderation.sink = AuditPoster(bot, bot.services.store)

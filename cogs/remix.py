"""The member's commands and controls: /remix, "Remix this image", /quota, /jobs, /show, the
result controls (Reroll, Edit, Vary, Delete, DM), Cancel and Retry, and the 🔁 ❌ ✉️ reactions:
Discord in, RemixService calls out.

Every control names its job in its custom id and reads the rest from the store, so it works
after a restart. A control pressed on a message its job does not belong to does nothing; one
pressed by someone it is not for gets a private sentence. Anything that starts a job passes the
same gates as /remix first (the server's channel list, pause and block list, queue room, block,
quota), so a refused control costs no work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from bot.client import RemixBot
from bot.errors import InvalidImage, RemixbotError
from bot.lifecycle import Presenter
from bot.moderation import ChannelClosed
from bot.remix.enums import (
    ASPECT_RATIOS,
    MAGIC_PROMPTS,
    MAX_NUM_IMAGES,
    MAX_SEED,
    PALETTE_PRESETS,
    RENDERING_SPEEDS,
    STYLE_PRESETS,
    STYLE_TYPES,
)
from bot.remix.request import MAX_PROMPT_CHARS, RemixRequest
from bot.store import Job
from bot.store.periods import PERIOD_WORDS
from bot.workflow import NotYourJob, RemixService, Requester
from cogs._access import NOT_ALLOWED, CommandAccess
from cogs._actions import delete_result, dm_refused, send_by_dm, show_job
from cogs._audit import AuditPoster
from cogs._context import MessageImage, RememberedImages, images_of
from cogs._controls import (
    CONTROLS,
    DYNAMIC_ITEMS,
    EDIT_MODAL,
    REMIX_MODAL,
    modal_fields,
    pick_view,
    prompt_modal,
)
from cogs._gates import (
    can_manage_messages,
    interaction_requester,
    is_admin,
    job_here,
    missing_permissions,
    refuse_after_defer,
    refused_early,
    roles_of,
    too_big,
)
from cogs._publish import ChannelPresenter, InteractionPresenter
from cogs._render import GENERIC_FAILURE, error_sentence, public_sentence
from cogs._ui import DELETE_EMOJI, DM_EMOJI, REROLL_EMOJI, jobs_lines

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

AUTO = "auto"
# A picked-up job asks Discord for the member's roles (only its "images left" line needs them).
ROLES_LOOKUP_SECONDS = 10.0
# One refusal reply per member per this many seconds for reactions (a reaction has no private
# answer; a blocked member reacting to ten results gets one reply, not ten).
REFUSAL_REPLY_SECONDS = 60.0
JOBS_LISTED = 10

NOT_HERE_TO_DELETE = (
    "Only the member who asked for this remix, or someone with Manage Messages, can delete it."
)
NOT_HERE_TO_CANCEL = "Only the member who asked for this remix, or a server admin, can cancel it."
NOT_YOURS_TO_SHOW = "You can show only your own remixes; /jobs lists them."
NO_IMAGE = "That message has no image I can remix; use it on a message with an image."
IMAGE_GONE = "That image is no longer there; open the menu on the message again."


def _choices(values: tuple[str, ...]) -> list[Choice[str]]:
    return [Choice(name=v.replace("_", " ").title(), value=v) for v in values]


ASPECT_CHOICES = [Choice(name="Match my image", value=AUTO)] + [
    Choice(name=r.replace("x", ":"), value=r) for r in ASPECT_RATIOS
]


def _member_or_dm(command: Any) -> Any:
    """Usable in servers and in a DM with the bot (installed to servers)."""
    command = app_commands.allowed_installs(guilds=True, users=False)(command)
    return app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)(command)


class Remix(commands.Cog):
    """Remix images: commands, the context menu, the result controls and reactions."""

    def __init__(self, bot: RemixBot, services: Services | None) -> None:
        self.bot = bot
        self._services = services
        self.controls = CONTROLS
        self.images = RememberedImages()
        self._background: list[asyncio.Task[None]] = []
        self._refusals: dict[int, float] = {}
        self.access = CommandAccess(bot)
        self.menu = _member_or_dm(
            app_commands.ContextMenu(name="Remix this image", callback=self.remix_this_image)
        )

    async def cog_load(self) -> None:
        """Add the context menu; once the gateway is ready, carry on with the jobs the last
        process left open, and keep picking up the jobs of processes that stop."""
        self.bot.tree.add_command(self.menu)
        if self._services is not None:
            self._background.append(asyncio.create_task(self._recover(), name="recover-jobs"))

    async def cog_unload(self) -> None:
        """Stop recovering (open jobs stay for the next start)."""
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        for task in self._background:
            task.cancel()

    async def _recover(self) -> None:
        await self.bot.wait_until_ready()
        remix = self.services.remix
        await remix.recover(self.services.reconciled, self._presenter_for, self._member_roles)
        await remix.watch_orphans(self._presenter_for, self._member_roles)

    async def _member_roles(self, job: Job) -> tuple[int, ...]:
        """The member's role ids now (roles are not stored with a job); () if unknown."""
        guild = self.bot.get_guild(job.guild_id) if job.guild_id is not None else None
        if guild is None:
            return ()
        member = guild.get_member(job.user_id)
        if member is None:
            try:
                async with asyncio.timeout(ROLES_LOOKUP_SECONDS):
                    member = await guild.fetch_member(job.user_id)
            except Exception:  # gone, no access, network: the default tier only (a footer line)
                log.info("roles of user %s not found; counting the default tier", job.user_id)
                return ()
        return roles_of(member)

    def _presenter_for(self, job: Job) -> Presenter | None:
        """A presenter for a job picked up after a restart: it edits the member's own request
        message (a slash command's response) or replies under the message they reacted to."""
        if job.channel_id is None:  # started from the terminal: nowhere to show it
            return None
        adopt = job.request_message_id if job.interaction_id is not None else None
        return ChannelPresenter(
            self.bot,
            job.channel_id,
            job.request_message_id,
            job.user_id,
            self.services.pool,
            self.controls,
            status_id=adopt,
        )

    @property
    def services(self) -> Services:
        """The bot's services (absent only in `remixbot sync`, which never runs commands)."""
        if self._services is None:
            raise RuntimeError("the Remix cog was loaded without services")
        return self._services

    @property
    def remix_service(self) -> RemixService:
        """The job service."""
        return self.services.remix

    async def _thinking(self, interaction: discord.Interaction) -> InteractionPresenter:
        """The public "thinking…" (for a control too: thinking=True makes a new message, where
        a plain component defer would edit the result itself), and its presenter."""
        await interaction.response.defer(thinking=True)
        presenter = InteractionPresenter(interaction, self.services.pool, self.controls)
        await presenter.remember_original()
        return presenter

    async def _refused_by_command_permissions(self, interaction: discord.Interaction) -> bool:
        """A control starting a job where the member may not use /remix: refused privately."""
        if await self.access.allowed(
            interaction.guild_id,
            interaction.channel_id,
            interaction.user,
            interaction.permissions.value,
        ):
            return False
        await interaction.response.send_message(NOT_ALLOWED, ephemeral=True)
        return True

    async def _here(self, interaction: discord.Interaction, job_id: int) -> Job | None:
        """The control's job, if it belongs where the control was pressed (else None)."""
        message = interaction.message.id if interaction.message is not None else None
        return await job_here(
            self.services.store, job_id, interaction.guild_id, interaction.channel_id, message
        )

    # --- /remix --------------------------------------------------------------------------

    @_member_or_dm
    @app_commands.command(name="remix", description="Remix an image with a prompt")
    @app_commands.describe(
        image="The image to remix (JPEG, PNG, WebP; GIF, BMP, TIFF, AVIF and HEIC are converted)",
        prompt="What the remix should show",
        aspect_ratio="Shape of the result (default: match my image)",
        rendering_speed="Faster is cheaper; Quality is slowest",
        style_type="Overall style",
        style_preset="A named style (type to search)",
        magic_prompt="Let the backend expand the prompt",
        image_weight="How closely to follow the image, 1-100 (default 50)",
        num_images="How many images to make",
        seed="Seed for repeatable results",
        negative_prompt="What to avoid",
        color_palette="A colour palette",
        style_reference="An image whose style to follow",
        mask="Edit backends: black marks what to change, white what to keep (same shape as image)",
    )
    @app_commands.choices(
        aspect_ratio=ASPECT_CHOICES,
        rendering_speed=_choices(RENDERING_SPEEDS),
        style_type=_choices(STYLE_TYPES),
        magic_prompt=_choices(MAGIC_PROMPTS),
        color_palette=_choices(PALETTE_PRESETS),
    )
    async def remix(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: Range[str, 1, MAX_PROMPT_CHARS],
        aspect_ratio: str | None = None,
        rendering_speed: str | None = None,
        style_type: str | None = None,
        style_preset: str | None = None,
        magic_prompt: str | None = None,
        image_weight: Range[int, 1, 100] | None = None,
        num_images: Range[int, 1, MAX_NUM_IMAGES] | None = None,
        seed: Range[int, 0, MAX_SEED] | None = None,
        negative_prompt: Range[str, 1, MAX_PROMPT_CHARS] | None = None,
        color_palette: str | None = None,
        style_reference: discord.Attachment | None = None,
        mask: discord.Attachment | None = None,
    ) -> None:
        """Remix an image with a prompt."""
        svc = self.remix_service
        # Everything before defer is pure and fast: refusals here are ephemeral and free.
        problem = missing_permissions(interaction) or too_big(
            image, svc.settings.max_input_bytes, "image"
        )
        if style_reference is not None and problem is None:
            problem = too_big(style_reference, svc.settings.max_input_bytes, "style reference")
        if mask is not None and problem is None:
            problem = too_big(mask, svc.settings.max_input_bytes, "mask")
        if problem:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        request = svc.build_request(
            prompt=prompt,
            aspect_ratio=None if aspect_ratio in (None, AUTO) else aspect_ratio,
            rendering_speed=rendering_speed,
            style_type=style_type,
            style_preset=style_preset,
            magic_prompt=magic_prompt,
            image_weight=image_weight,
            num_images=num_images,
            seed=seed,
            negative_prompt=negative_prompt,
            palette_name=color_palette,
            style_ref_count=1 if style_reference else 0,
            has_mask=mask is not None,
        )
        if await refused_early(interaction, svc, request.num_images, request.prompt):
            return
        presenter = await self._thinking(interaction)
        try:
            # A few uploads at a time: a burst of members waits here holding nothing, not
            # megabytes each (the "thinking…" is already shown).
            async with svc.intake_turn():
                data = await _read(image, "image")
                refs = [await _read(style_reference, "style reference")] if style_reference else []
                mask_data = await _read(mask, "mask") if mask else None
                who = interaction_requester(interaction, presenter.original_id)
                await svc.remix(who, request, data, refs, presenter, mask_data)
        except Exception as exc:
            await refuse_after_defer(presenter, exc, "/remix")

    @remix.autocomplete("style_preset")
    async def _preset_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[Choice[str]]:
        needle = current.strip().upper().replace(" ", "_")
        found = [p for p in STYLE_PRESETS if needle in p] if needle else list(STYLE_PRESETS)
        return [Choice(name=p.replace("_", " ").title(), value=p) for p in found[:25]]

    # --- "Remix this image" --------------------------------------------------------------

    async def remix_this_image(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """The message context menu: pick one of the message's images, then a prompt."""
        images = images_of(message)
        problem = NO_IMAGE if not images else missing_permissions(interaction)
        if problem:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        if await refused_early(interaction, self.remix_service, 1):
            return
        channel_id = interaction.channel_id or message.channel.id
        self.images.remember(channel_id, message.id, images)
        if len(images) == 1:
            await self.open_remix_modal(interaction, message.id, 1)
            return
        names = [i.name for i in images]
        await interaction.response.send_message(
            f"That message has {len(images)} images; which one?",
            view=pick_view(message.id, names),
            ephemeral=True,
        )

    async def open_remix_modal(
        self, interaction: discord.Interaction, message_id: int, index: int
    ) -> None:
        """The prompt modal for one image of a message (its custom id says which)."""
        modal = prompt_modal("Remix this image", f"remix:remixmodal:{message_id}:{index}")
        await interaction.response.send_modal(modal)

    async def _remix_submitted(
        self, interaction: discord.Interaction, message_id: int, index: int
    ) -> None:
        """A context-menu modal came back: the same path, checks and charges as /remix."""
        svc = self.remix_service
        fields = modal_fields(interaction)
        try:
            request = svc.build_request(
                prompt=fields.prompt,
                negative_prompt=fields.negative_prompt,
                image_weight=fields.image_weight,
            )
        except RemixbotError as exc:
            await interaction.response.send_message(error_sentence(exc), ephemeral=True)
            return
        problem = missing_permissions(interaction)
        if problem:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        channel_id = interaction.channel_id or 0
        limit = svc.settings.max_input_bytes
        # The images seen when the menu opened: refusals about them are still private here.
        seen = self.images.recall(channel_id, message_id)
        if seen is not None:
            problem = _image_problem(seen, index, limit)
            if problem:
                await interaction.response.send_message(problem, ephemeral=True)
                return
        if await refused_early(interaction, svc, request.num_images, request.prompt):
            return
        presenter = await self._thinking(interaction)
        try:
            images = seen or await self.images.images(self.bot, channel_id, message_id)
            problem = _image_problem(images, index, limit)
            if problem:
                raise InvalidImage(problem)
            data = await images[index - 1].read(self.bot.http, limit)
            who = interaction_requester(interaction, presenter.original_id)
            await svc.remix(who, request, data, [], presenter)
        except Exception as exc:
            await refuse_after_defer(presenter, exc, "Remix this image")

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Modal submissions, by custom id (they carry everything; nothing is kept in memory)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if match := EDIT_MODAL.fullmatch(custom_id):
            await self._edit_submitted(interaction, int(match["job"]))
        elif match := REMIX_MODAL.fullmatch(custom_id):
            await self._remix_submitted(interaction, int(match["message"]), int(match["index"]))

    # --- /quota, /jobs, /show ------------------------------------------------------------

    @_member_or_dm
    @app_commands.command(name="quota", description="Show how many remix images you have left")
    async def quota(self, interaction: discord.Interaction) -> None:
        """Show how many remix images you have left and when the quota resets."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        status = await self.services.store.quota_status(
            interaction.user.id, interaction.guild_id, roles_of(interaction.user)
        )
        if status.blocked_reason:
            text = f"You are blocked from remixing: {status.blocked_reason}"
        elif status.remaining is None:
            text = "You have unlimited remix images here."
        else:
            stamp = int(status.resets_at.timestamp())
            text = (
                f"You have **{status.remaining}** of {status.limit} images left "
                f"{PERIOD_WORDS.get(status.period, 'this period')}; "
                f"it resets <t:{stamp}:R> (<t:{stamp}:f>)."
            )
        await interaction.followup.send(text, ephemeral=True)

    @_member_or_dm
    @app_commands.command(name="jobs", description="List your recent remixes (only you see it)")
    async def jobs(self, interaction: discord.Interaction) -> None:
        """Your recent remixes: id, state, when, prompt and a jump link."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self.services.store.list_jobs(user_id=interaction.user.id, limit=JOBS_LISTED)
        await interaction.followup.send(
            jobs_lines(found), ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @_member_or_dm
    @app_commands.command(name="show", description="Post one of your remixes again, with controls")
    @app_commands.describe(job="The job id (from /jobs or a result's footer)")
    async def show(self, interaction: discord.Interaction, job: Range[int, 1]) -> None:
        """Recreate a job's result and controls here (Midjourney's /show)."""
        found = await self.services.store.find_job(job)
        problem: str | None = None
        if found is None or found.user_id != interaction.user.id:
            problem = NOT_YOURS_TO_SHOW
        elif found.state != "delivered":
            problem = f"That remix is {found.state}; only finished remixes can be shown."
        else:
            problem = missing_permissions(interaction) or await self._channel_closed(interaction)
        if problem or found is None:
            await interaction.response.send_message(problem or GENERIC_FAILURE, ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
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
        job: Job,
        *,
        images: int,
        prompt: str,
        repeat: int | None,
        busy: str,
        start: Callable[[Requester, Presenter], Awaitable[object]],
    ) -> None:
        """The one path of every control that starts a job (Reroll, Retry, Edit, Vary): the
        gates /remix has, answered privately (a repeat within the double-tap window, the bot's
        permissions here, /remix's command permissions, the server's rules, block, quota); then
        a public "thinking…" (a new message) and the job, charged to whoever pressed."""
        svc = self.remix_service
        problem = missing_permissions(interaction)
        if (
            problem is None
            and repeat is not None
            and not svc.repeats.first(repeat, interaction.user.id)
        ):
            problem = busy
        if problem:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        if await self._refused_by_command_permissions(interaction):
            return
        if await refused_early(interaction, svc, images, prompt):
            return
        presenter = await self._thinking(interaction)
        who = interaction_requester(interaction, presenter.original_id)
        try:
            await start(who, presenter)
        except Exception as exc:
            await refuse_after_defer(presenter, exc, f"a control on job {job.id}")

    async def again_from_button(
        self, interaction: discord.Interaction, job_id: int, *, retry: bool
    ) -> None:
        """Reroll (new seed) or Retry (same job) ``job_id`` for whoever clicked, as a new message."""
        svc = self.remix_service
        parent = await self._here(interaction, job_id)
        if parent is None:
            await interaction.response.defer()  # not this message's job: nothing happens
            return
        if retry and parent.user_id != interaction.user.id:
            await interaction.response.send_message(error_sentence(NotYourJob()), ephemeral=True)
            return
        message_id = interaction.message.id if interaction.message else job_id
        verb = "retrying" if retry else "rerolling"

        async def start(who: Requester, presenter: Presenter) -> object:
            if retry:
                return await svc.retry(who, job_id, presenter)
            return await svc.reroll(who, job_id, presenter)

        await self._start_from_control(
            interaction,
            parent,
            images=parent.images_requested,
            prompt=str(parent.request.get("prompt", "")),
            repeat=message_id,
            busy=f"You're already {verb} this one; the result will appear below.",
            start=start,
        )

    async def open_edit(self, interaction: discord.Interaction, job_id: int) -> None:
        """Edit: a modal pre-filled with the job's prompt, negative prompt and image weight."""
        job = await self._here(interaction, job_id)
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
        job = await self._here(interaction, job_id)
        if job is None:
            await interaction.response.defer()
            return
        fields = modal_fields(interaction)
        try:
            request = svc.edited_request(
                RemixRequest.from_dict(job.request),
                fields.prompt,
                fields.negative_prompt,
                fields.image_weight,
            )
        except RemixbotError as exc:
            await interaction.response.send_message(error_sentence(exc), ephemeral=True)
            return
        await self._start_from_control(
            interaction,
            job,
            images=request.num_images,
            prompt=request.prompt,
            repeat=None,  # each submission is its own interaction: replays are caught by its id
            busy="",
            start=lambda who, presenter: svc.edit(
                who,
                job.id,
                presenter,
                prompt=request.prompt,
                negative_prompt=request.negative_prompt,
                image_weight=request.image_weight,
            ),
        )

    async def vary_from_select(
        self, interaction: discord.Interaction, job_id: int, index: int, strength: str
    ) -> None:
        """Vary: the chosen result image becomes the input of a new job, charged to the member."""
        svc = self.remix_service
        job = await self._here(interaction, job_id)
        if job is None:
            await interaction.response.defer()
            return
        message_id = interaction.message.id if interaction.message else job_id
        await self._start_from_control(
            interaction,
            job,
            images=job.images_requested,
            prompt=str(job.request.get("prompt", "")),
            repeat=hash((message_id, index, strength)),
            busy="You're already varying this one; the result will appear below.",
            start=lambda who, presenter: svc.vary(who, job.id, index, strength, presenter),
        )

    # --- delete, DM, cancel ------------------------------------------------------------------

    async def delete_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Delete the result (requester or Manage Messages); the books are untouched."""
        job = await self._here(interaction, job_id)
        if job is None:
            await interaction.response.defer()
            return
        if job.user_id != interaction.user.id and not can_manage_messages(interaction):
            await interaction.response.send_message(NOT_HERE_TO_DELETE, ephemeral=True)
            return
        await interaction.response.defer()
        message = interaction.message.id if interaction.message else None
        await delete_result(self.bot, job, interaction.channel_id or 0, message)

    async def dm_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Send the images and the job's details to whoever clicked, by DM."""
        job = await self._here(interaction, job_id)
        if job is None:
            await interaction.response.defer()
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
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
        await interaction.followup.send(text, ephemeral=True)

    async def cancel_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Cancel a queued job (requester or admin): refunded at once; a running one goes on."""
        job = await self._here(interaction, job_id)
        if job is None:
            await interaction.response.defer()
            return
        admin = is_admin(interaction)
        own = job.user_id == interaction.user.id
        if not own and not admin:
            await interaction.response.send_message(NOT_HERE_TO_CANCEL, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            await self.remix_service.cancel(job.id, interaction.user.id if own else None)
            text = "Cancelled; " + ("you were" if own else "its member was") + " not charged."
        except RemixbotError as exc:
            text = error_sentence(exc)
        await interaction.followup.send(text, ephemeral=True)

    # --- reactions -------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """🔁 rerolls a result for the reactor, ❌ deletes it (requester or Manage Messages),
        ✉️ sends it by DM (raw event: works on uncached messages and after a restart)."""
        emoji = str(payload.emoji)
        if emoji not in (REROLL_EMOJI, DELETE_EMOJI, DM_EMOJI):
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


def _image_problem(images: list[MessageImage], index: int, limit: int) -> str | None:
    """Why the picked image cannot be remixed (gone, or over the size limit), or None."""
    if not 0 < index <= len(images):
        return IMAGE_GONE
    picked = images[index - 1]
    return too_big(picked.attachment, limit, "image") if picked.attachment else None


class CommandNotAllowed(RemixbotError):
    """The server's command permissions do not let the member use /remix here."""


async def _read(attachment: discord.Attachment, what: str) -> bytes:
    try:
        return await attachment.read()
    except discord.HTTPException:
        raise InvalidImage(
            f"I could not download the {what} from Discord; attach it again and retry."
        ) from None


async def setup(bot: commands.Bot) -> None:
    """Load the cog; its services come from the bot (built in the composition root)."""
    if not isinstance(bot, RemixBot):
        raise RuntimeError("cogs.remix runs on bot.client.RemixBot")
    # `remixbot sync` loads the cog without services: it needs only the commands' shape.
    cog = Remix(bot, bot.services)
    await bot.add_cog(cog)
    bot.remix_cog = cog
    bot.tree.error_sentence = error_sentence
    bot.add_dynamic_items(*DYNAMIC_ITEMS)
    if bot.services is not None:  # moderation events go to each server's log channel
        bot.services.remix.moderation.sink = AuditPoster(bot, bot.services.store)

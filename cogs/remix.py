"""The ways in: /remix, "Remix this image" (the message context menu, its image select and
modal) and /quota; Discord in, RemixService calls out. Once ready, it hands RemixService.recover
a presenter for each job a previous process left open. The controls under results are
cogs/results.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from bot.client import RemixBot
from bot.errors import InvalidImage, RemixbotError
from bot.lifecycle import Presenter
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
from bot.remix.request import MAX_PROMPT_CHARS
from bot.store import Job
from bot.store.periods import PERIOD_WORDS
from cogs._base import ServicesCog
from cogs._context import MessageImage, RememberedImages, images_of
from cogs._controls import REMIX_MODAL, modal_fields, pick_view, prompt_modal
from cogs._gates import (
    Refusal,
    acknowledge,
    interaction_requester,
    member_or_dm,
    missing_permissions,
    precheck_refusal,
    refuse_after_defer,
    refused_early,
    roles_of,
    too_big,
)
from cogs._publish import ChannelPresenter, InteractionPresenter
from cogs._render import error_sentence

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

AUTO = "auto"
# A picked-up job asks Discord for the member's roles (only its "images left" line needs them).
ROLES_LOOKUP_SECONDS = 10.0
NO_IMAGE = "That message has no image I can remix; use it on a message with an image."
IMAGE_GONE = "That image is no longer there; open the menu on the message again."


def _choices(values: tuple[str, ...]) -> list[Choice[str]]:
    return [Choice(name=v.replace("_", " ").title(), value=v) for v in values]


ASPECT_CHOICES = [Choice(name="Match my image", value=AUTO)] + [
    Choice(name=r.replace("x", ":"), value=r) for r in ASPECT_RATIOS
]


class Remix(ServicesCog):
    """Remix images: /remix, the "Remix this image" context menu, /quota; and recovery."""

    def __init__(self, bot: RemixBot, services: Services | None) -> None:
        super().__init__(bot, services)
        self.images = RememberedImages()
        self._background: list[asyncio.Task[None]] = []
        self.menu = member_or_dm(
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

    # --- /remix --------------------------------------------------------------------------

    @member_or_dm
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
        answered = await acknowledge(
            interaction,
            _go_on(precheck_refusal(interaction, svc, request.num_images, request.prompt)),
            lambda: self._thinking(interaction, remember=False),
        )
        if answered is None:
            return
        presenter, _ = answered
        named = _name_original(presenter)
        try:
            # A few uploads at a time: a burst of members waits here holding nothing, not
            # megabytes each (the "thinking…" is already shown).
            async with svc.intake_turn():
                data = await _read(image, "image")
                refs = [await _read(style_reference, "style reference")] if style_reference else []
                mask_data = await _read(mask, "mask") if mask else None
                await named
                who = interaction_requester(interaction, presenter.original_id)
                await svc.remix(who, request, data, refs, presenter, mask_data)
        except Exception as exc:
            named.cancel()
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
        answered = await acknowledge(
            interaction,
            _go_on(precheck_refusal(interaction, svc, request.num_images, request.prompt)),
            lambda: self._thinking(interaction, remember=False),
        )
        if answered is None:
            return
        presenter, _ = answered
        named = _name_original(presenter)
        try:
            images = seen or await self.images.images(self.bot, channel_id, message_id)
            problem = _image_problem(images, index, limit)
            if problem:
                raise InvalidImage(problem)
            data = await images[index - 1].read(self.bot.http, limit)
            await named
            who = interaction_requester(interaction, presenter.original_id)
            await svc.remix(who, request, data, [], presenter)
        except Exception as exc:
            named.cancel()
            await refuse_after_defer(presenter, exc, "Remix this image")

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """The context menu's modal submissions, by custom id (they carry everything)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if match := REMIX_MODAL.fullmatch(custom_id):
            await self._remix_submitted(interaction, int(match["message"]), int(match["index"]))

    # --- /quota --------------------------------------------------------------------------

    @member_or_dm
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
        await interaction.edit_original_response(content=text)


def _image_problem(images: list[MessageImage], index: int, limit: int) -> str | None:
    """Why the picked image cannot be remixed (gone, or over the size limit), or None."""
    if not 0 < index <= len(images):
        return IMAGE_GONE
    picked = images[index - 1]
    return too_big(picked.attachment, limit, "image") if picked.attachment else None


async def _go_on(refusal: Awaitable[Refusal | None]) -> Refusal | bool:
    """A check that only refuses, as `acknowledge`'s gates: its refusal, or True to go on."""
    return await refusal or True


def _name_original(presenter: InteractionPresenter) -> asyncio.Future[int | None]:
    """Ask Discord for the "thinking…" message's id (the reply target after a restart) while
    the upload is fetched: two round trips at once rather than one after the other."""
    return asyncio.ensure_future(presenter.remember_original())


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

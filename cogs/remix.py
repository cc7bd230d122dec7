"""/remix, /quota, the Reroll button and 🔁 reactions: Discord in, RemixService calls out."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
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
from bot.workflow import NotYourJob, Requester
from cogs._publish import ChannelPresenter, Controls, InteractionPresenter
from cogs._render import GENERIC_FAILURE, error_sentence, public_sentence
from cogs._ui import REROLL_EMOJI, RETRY_EMOJI

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

AUTO = "auto"
# The most the pre-defer quota check may take of the 3 s Discord gives the first response.
PRECHECK_SECONDS = 1.0
# A picked-up job asks Discord for the member's roles (only its "images left" line needs them).
ROLES_LOOKUP_SECONDS = 10.0


def _choices(values: tuple[str, ...]) -> list[Choice[str]]:
    return [Choice(name=v.replace("_", " ").title(), value=v) for v in values]


ASPECT_CHOICES = [Choice(name="Match my image", value=AUTO)] + [
    Choice(name=r.replace("x", ":"), value=r) for r in ASPECT_RATIOS
]


def _roles(user: discord.abc.User | discord.Member) -> tuple[int, ...]:
    """The member's role ids (none outside a guild); Discord announces every role of a guild in
    GUILD_CREATE and keeps them current, so discord.py's public `Member.roles` has them all."""
    if not isinstance(user, discord.Member):
        return ()
    return tuple(r.id for r in user.roles if not r.is_default())


def _too_big(attachment: discord.Attachment, limit: int, what: str) -> str | None:
    if attachment.size > limit:
        return f"The {what} is {attachment.size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB."
    return None


def _missing_permissions(interaction: discord.Interaction) -> str | None:
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


class Remix(commands.Cog):
    """Remix images: /remix, /quota, Reroll and Retry buttons and 🔁 reactions."""

    def __init__(self, bot: RemixBot, services: Services | None) -> None:
        self.bot = bot
        self._services = services
        self.controls = Controls(result=result_view, retry=retry_view)
        self._background: list[asyncio.Task[None]] = []

    async def cog_load(self) -> None:
        """Once the gateway is ready, carry on with the jobs the last process left open, and
        keep picking up the jobs of processes that stop."""
        if self._services is not None:
            self._background.append(asyncio.create_task(self._recover(), name="recover-jobs"))

    async def cog_unload(self) -> None:
        """Stop recovering (open jobs stay for the next start)."""
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
        return _roles(member)

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

    # --- /remix --------------------------------------------------------------------------

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
        svc = self.services.remix
        # Everything before defer is pure and fast: refusals here are ephemeral and free.
        problem = _missing_permissions(interaction) or _too_big(
            image, svc.settings.max_input_bytes, "image"
        )
        if style_reference is not None and problem is None:
            problem = _too_big(style_reference, svc.settings.max_input_bytes, "style reference")
        if mask is not None and problem is None:
            problem = _too_big(mask, svc.settings.max_input_bytes, "mask")
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
        if await self._refused_early(interaction, request.num_images):
            return
        await interaction.response.defer(thinking=True)
        presenter = InteractionPresenter(interaction, svc.pool, self.controls)
        await presenter.remember_original()
        try:
            # A few uploads at a time: a burst of members waits here holding nothing, not
            # megabytes each (the "thinking…" is already shown).
            async with svc.intake_turn():
                data = await _read(image, "image")
                refs = [await _read(style_reference, "style reference")] if style_reference else []
                mask_data = await _read(mask, "mask") if mask else None
                await svc.remix(
                    self._requester(interaction, presenter),
                    request,
                    data,
                    refs,
                    presenter,
                    mask_data,
                )
        except Exception as exc:
            await _refuse_after_defer(presenter, exc, "/remix")

    @remix.autocomplete("style_preset")
    async def _preset_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[Choice[str]]:
        needle = current.strip().upper().replace(" ", "_")
        found = [p for p in STYLE_PRESETS if needle in p] if needle else list(STYLE_PRESETS)
        return [Choice(name=p.replace("_", " ").title(), value=p) for p in found[:25]]

    # --- /quota --------------------------------------------------------------------------

    @app_commands.command(name="quota", description="Show how many remix images you have left")
    async def quota(self, interaction: discord.Interaction) -> None:
        """Show how many remix images you have left and when the quota resets."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        status = await self.services.store.quota_status(
            interaction.user.id, interaction.guild_id, _roles(interaction.user)
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

    # --- rerolls and retries ---------------------------------------------------------------

    async def again_from_button(
        self, interaction: discord.Interaction, job_id: int, *, retry: bool
    ) -> None:
        """Reroll (new seed) or Retry (same job) ``job_id`` for whoever clicked, as a new message."""
        svc = self.services.remix
        problem = _missing_permissions(interaction)
        message_id = interaction.message.id if interaction.message else job_id
        if problem is None and not svc.repeats.first(message_id, interaction.user.id):
            verb = "retrying" if retry else "rerolling"
            problem = f"You're already {verb} this one; the result will appear below."
        if problem:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        parent: Job | None = None

        async def images() -> int:
            nonlocal parent
            parent = await self.services.store.find_job(job_id)
            return parent.images_requested if parent is not None else 1

        if await self._refused_early(interaction, images):
            return
        if retry and parent is not None and parent.user_id != interaction.user.id:
            await interaction.response.send_message(error_sentence(NotYourJob()), ephemeral=True)
            return
        # thinking=True makes a new message; a plain component defer would edit the result itself.
        await interaction.response.defer(thinking=True)
        presenter = InteractionPresenter(interaction, self.services.pool, self.controls)
        await presenter.remember_original()
        who = self._requester(interaction, presenter)
        try:
            if retry:
                await svc.retry(who, job_id, presenter)
            else:
                await svc.reroll(who, job_id, presenter)
        except Exception as exc:
            await _refuse_after_defer(presenter, exc, "a reroll")

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """🔁 on a result rerolls it for the reactor (raw event: works on uncached messages)."""
        if str(payload.emoji) != REROLL_EMOJI or payload.user_id == getattr(
            self.bot.user, "id", None
        ):
            return
        if payload.member is not None and payload.member.bot:
            return
        svc = self.services.remix
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
            role_ids=_roles(payload.member) if payload.member else (),
            request_message_id=payload.message_id,
        )
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
            await _refuse_after_defer(presenter, exc, "a 🔁 reroll")

    # --- helpers -------------------------------------------------------------------------

    async def _refused_early(
        self, interaction: discord.Interaction, images: int | Callable[[], Awaitable[int]]
    ) -> bool:
        """Answer privately, before the defer, the refusals known at once (queue room, block,
        quota); True if refused. After a public defer Discord has no private answer left."""
        who = Requester(
            user_id=interaction.user.id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            role_ids=_roles(interaction.user),
        )
        try:
            # Bounded: the 3-second deadline of the first response comes first. If the store is
            # slow (another process holds its lock), reserving checks the same things later.
            async with asyncio.timeout(PRECHECK_SECONDS):
                count = images if isinstance(images, int) else await images()
                await self.services.remix.precheck(who, count)
        except RemixbotError as exc:
            await interaction.response.send_message(error_sentence(exc), ephemeral=True)
            return True
        except TimeoutError:
            log.info("the quota pre-check took over %gs; checking when reserving", PRECHECK_SECONDS)
        return False

    @staticmethod
    def _requester(interaction: discord.Interaction, presenter: InteractionPresenter) -> Requester:
        return Requester(
            user_id=interaction.user.id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            role_ids=_roles(interaction.user),
            interaction_id=interaction.id,
            request_message_id=presenter.original_id,
        )


async def _refuse_after_defer(
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


async def _read(attachment: discord.Attachment, what: str) -> bytes:
    try:
        return await attachment.read()
    except discord.HTTPException:
        raise InvalidImage(
            f"I could not download the {what} from Discord; attach it again and retry."
        ) from None


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"remix:(?P<action>base):(?P<job>[0-9]+)"
):
    """A button under a job's message that carries only the job id in its custom id
    (`remix:<action>:<job id>`), so it works days later and after restarts. Subclasses name the
    action and say what a click does."""

    action = ""
    label = ""
    emoji = ""
    style = discord.ButtonStyle.secondary

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=self.label,
                emoji=self.emoji,
                style=self.style,
                custom_id=f"remix:{self.action}:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> JobButton:
        """Rebuild the button from a click (no state needed)."""
        return cls(int(match["job"]))


class RerollButton(JobButton, template=r"remix:reroll:(?P<job>[0-9]{1,18})"):
    """Reroll: the job again with a new seed, for whoever clicked, at their charge."""

    action, label, emoji = "reroll", "Reroll", REROLL_EMOJI

    async def callback(self, interaction: discord.Interaction) -> None:
        """Reroll the job for whoever clicked."""
        await _cog(interaction).again_from_button(interaction, self.job_id, retry=False)


class RetryButton(JobButton, template=r"remix:retry:(?P<job>[0-9]{1,18})"):
    """Retry under a job a restart lost at the backend: the same job again, for its member."""

    action, label, emoji = "retry", "Retry", RETRY_EMOJI
    style = discord.ButtonStyle.primary

    async def callback(self, interaction: discord.Interaction) -> None:
        """Run the same job again for its member."""
        await _cog(interaction).again_from_button(interaction, self.job_id, retry=True)


def _cog(interaction: discord.Interaction) -> Remix:
    """The Remix cog of the bot that received the click (set when the cog loads)."""
    client = interaction.client
    assert isinstance(client, RemixBot) and isinstance(client.remix_cog, Remix)
    return client.remix_cog


def result_view(job_id: int) -> discord.ui.View:
    """A persistent view holding the controls under one result."""
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job_id))
    return view


def retry_view(job_id: int) -> discord.ui.View:
    """A persistent view holding the Retry button for one job."""
    view = discord.ui.View(timeout=None)
    view.add_item(RetryButton(job_id))
    return view


async def setup(bot: commands.Bot) -> None:
    """Load the cog; its services come from the bot (built in the composition root)."""
    if not isinstance(bot, RemixBot):
        raise RuntimeError("cogs.remix runs on bot.client.RemixBot")
    # `remixbot sync` loads the cog without services: it needs only the commands' shape.
    cog = Remix(bot, bot.services)
    await bot.add_cog(cog)
    bot.remix_cog = cog
    bot.tree.error_sentence = error_sentence
    bot.add_dynamic_items(RerollButton, RetryButton)

"""/remix, /quota, the Reroll button and 🔁 reactions: Discord in, RemixService calls out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from bot.client import GENERIC_FAILURE
from bot.errors import InvalidImage, RemixbotError
from bot.remix.enums import (
    ASPECT_RATIOS,
    MAGIC_PROMPTS,
    MAX_SEED,
    PALETTE_PRESETS,
    RENDERING_SPEEDS,
    STYLE_PRESETS,
    STYLE_TYPES,
)
from bot.remix.request import MAX_PROMPT_CHARS
from bot.store import Job, UserBlocked
from bot.store.periods import PERIOD_WORDS
from bot.workflow import Requester
from cogs._publish import ChannelPresenter, InteractionPresenter
from cogs._ui import REROLL_EMOJI, RerollButton

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

AUTO = "auto"
# A second reroll (🔁 or button) by the same member of the same result within this many seconds
# is ignored.
REACTION_WINDOW = 10.0
# The most the pre-defer quota check may take of the 3 s Discord gives the first response.
PRECHECK_SECONDS = 1.0
# A resumed job asks Discord for the member's roles (only its "images left" line needs them).
ROLES_LOOKUP_SECONDS = 10.0


def _choices(values: tuple[str, ...]) -> list[Choice[str]]:
    return [Choice(name=v.replace("_", " ").title(), value=v) for v in values]


ASPECT_CHOICES = [Choice(name="Match my image", value=AUTO)] + [
    Choice(name=r.replace("x", ":"), value=r) for r in ASPECT_RATIOS
]


def _roles(user: discord.abc.User | discord.Member) -> tuple[int, ...]:
    """The member's role ids as the event carried them (none outside a guild).

    `Member.roles` keeps only roles in discord.py's cache; the payload's ids are what the member
    has, whether or not the guild's roles were announced to this session.
    """
    raw = getattr(user, "_roles", None)
    if raw is None:
        return tuple(r.id for r in getattr(user, "roles", ()) if not r.is_default())
    everyone = getattr(getattr(user, "guild", None), "id", None)
    return tuple(int(r) for r in raw if int(r) != everyone)


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
    """Remix images: /remix, /quota, the Reroll button and 🔁 reactions."""

    def __init__(self, bot: commands.Bot, services: Services | None) -> None:
        self.bot = bot
        self._services = services
        self._recent_reactions: dict[tuple[int, int], float] = {}

    async def cog_load(self) -> None:
        """Resume task-proxy jobs the last process left running, once the gateway is ready."""
        self._resumer: asyncio.Task[None] | None = None
        if self._services is not None and self._services.reconciled.resumable:
            self._resumer = asyncio.create_task(self._resume_jobs(), name="resume-jobs")

    async def cog_unload(self) -> None:
        """Stop resuming (the jobs stay open for the next start's reconcile)."""
        if self._resumer is not None:
            self._resumer.cancel()

    async def _resume_jobs(self) -> None:
        await self.bot.wait_until_ready()
        jobs = self.services.reconciled.resumable
        await asyncio.gather(*(self._resume_one(job) for job in jobs), return_exceptions=True)

    async def _resume_one(self, job: Job) -> None:
        svc = self.services
        if job.channel_id is None:  # started from the terminal: nowhere to post it
            await svc.store.fail(job.id, "started outside Discord; not resumed", "unknown")
            return
        presenter = ChannelPresenter(
            self.bot, job.channel_id, job.request_message_id, job.user_id, svc.pool
        )
        try:
            roles = await self._member_roles(job.guild_id, job.user_id)
            await svc.remix.resume(job, presenter, roles)
        except Exception:
            log.exception("job %s: resuming failed", job.id)

    async def _member_roles(self, guild_id: int | None, user_id: int) -> tuple[int, ...]:
        """The member's role ids now (roles are not stored with a job); () if unknown."""
        guild = self.bot.get_guild(guild_id) if guild_id is not None else None
        if guild is None:
            return ()
        member = guild.get_member(user_id)
        if member is None:
            try:
                async with asyncio.timeout(ROLES_LOOKUP_SECONDS):
                    member = await guild.fetch_member(user_id)
            except Exception:  # gone, no access, network: the default tier only (a footer line)
                log.info("roles of user %s not found; counting the default tier", user_id)
                return ()
        return _roles(member)

    @property
    def services(self) -> Services:
        """The bot's services (absent only in `remixbot sync`, which never runs commands)."""
        if self._services is None:
            raise RuntimeError("the Remix cog was loaded without services")
        return self._services

    # --- /remix --------------------------------------------------------------------------

    @app_commands.command(name="remix", description="Remix an image with a prompt")
    @app_commands.describe(
        image="The image to remix (JPEG, PNG, WebP or GIF)",
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
        num_images: Range[int, 1, 8] | None = None,
        seed: Range[int, 0, MAX_SEED] | None = None,
        negative_prompt: Range[str, 1, MAX_PROMPT_CHARS] | None = None,
        color_palette: str | None = None,
        style_reference: discord.Attachment | None = None,
    ) -> None:
        """Remix an image with a prompt."""
        svc = self.services.remix
        # Everything before defer is pure and fast: refusals here are ephemeral and free.
        problem = _missing_permissions(interaction) or _too_big(
            image, svc.settings.max_input_bytes, "image"
        )
        if style_reference is not None and problem is None:
            problem = _too_big(style_reference, svc.settings.max_input_bytes, "style reference")
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
        )
        if await self._refused_early(interaction, request.num_images):
            return
        await interaction.response.defer(thinking=True)
        presenter = InteractionPresenter(interaction, svc.pool)
        await presenter.remember_original()
        try:
            data = await _read(image, "image")
            refs = [await _read(style_reference, "style reference")] if style_reference else []
            await svc.remix(self._requester(interaction, presenter), request, data, refs, presenter)
        except RemixbotError as exc:
            await self._refuse_after_defer(interaction, _public_sentence(exc))
        except Exception:
            log.exception("/remix failed before the job was queued")
            await self._refuse_after_defer(interaction, GENERIC_FAILURE)

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

    # --- rerolls -------------------------------------------------------------------------

    async def reroll_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Reroll ``job_id`` for whoever clicked; the result is a new message."""
        problem = _missing_permissions(interaction)
        message_id = interaction.message.id if interaction.message else job_id
        if problem is None and not self._first_request(message_id, interaction.user.id):
            problem = "You're already rerolling this one; the result will appear below."
        if problem:
            await interaction.response.send_message(problem, ephemeral=True)
            return

        async def images() -> int:
            parent = await self.services.store.find_job(job_id)
            return parent.images_requested if parent is not None else 1

        if await self._refused_early(interaction, images):
            return
        # thinking=True makes a new message; a plain component defer would edit the result itself.
        await interaction.response.defer(thinking=True)
        presenter = InteractionPresenter(interaction, self.services.pool)
        await presenter.remember_original()
        who = self._requester(interaction, presenter)
        try:
            await self.services.remix.reroll(who, job_id, presenter)
        except RemixbotError as exc:
            await self._refuse_after_defer(interaction, _public_sentence(exc))
        except Exception:
            log.exception("a reroll failed before the job was queued")
            await self._refuse_after_defer(interaction, GENERIC_FAILURE)

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """🔁 on a result rerolls it for the reactor (raw event: works on uncached messages)."""
        if str(payload.emoji) != REROLL_EMOJI or payload.user_id == getattr(
            self.bot.user, "id", None
        ):
            return
        if payload.member is not None and payload.member.bot:
            return
        if not self._first_request(payload.message_id, payload.user_id):
            return
        job = await self.services.store.job_for_message(payload.message_id)
        if job is None:
            return
        presenter = ChannelPresenter(
            self.bot, payload.channel_id, payload.message_id, payload.user_id, self.services.pool
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
            await self.services.remix.reroll(who, job.id, presenter)
        except RemixbotError as exc:
            await self._tell_in_channel(presenter, _public_sentence(exc))
        except Exception:
            log.exception("a 🔁 reroll failed before the job was queued")
            await self._tell_in_channel(presenter, GENERIC_FAILURE)

    # --- helpers -------------------------------------------------------------------------

    @staticmethod
    async def _tell_in_channel(presenter: ChannelPresenter, message: str) -> None:
        """Replace the 🔁 status reply with why nothing runs (nothing was charged)."""
        try:
            await presenter.fail(message)
        except Exception:
            log.info("could not tell a member why their reroll did not run")

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
            await interaction.response.send_message(_sentence(exc), ephemeral=True)
            return True
        except TimeoutError:
            log.info("the quota pre-check took over %gs; checking when reserving", PRECHECK_SECONDS)
        return False

    def _first_request(self, message_id: int, user_id: int) -> bool:
        """False for a repeat reroll (🔁 or button) by the same member on the same message soon
        after the first: a double tap, a double click or a redelivered event must not buy two."""
        now = time.monotonic()
        seen = self._recent_reactions
        for key in [k for k, at in seen.items() if now - at > REACTION_WINDOW]:
            del seen[key]
        key = (message_id, user_id)
        if key in seen:
            return False
        seen[key] = now
        return True

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

    @staticmethod
    async def _refuse_after_defer(interaction: discord.Interaction, message: str) -> None:
        """Replace the 'thinking…' with the sentence (nothing was charged).

        After a public defer the first followup would edit that same message anyway, and a
        deleted one may leave nothing to answer on, so the refusal is this edit.
        """
        try:
            await interaction.edit_original_response(content=message)
        except discord.HTTPException:
            log.info("could not tell a member why their request was refused")


def _public_sentence(exc: RemixbotError) -> str:
    """The refusal for a message the channel sees: a block's reason stays private (/quota)."""
    if isinstance(exc, UserBlocked):
        return "You can't remix here right now; /quota tells you why (only you see it)."
    return _sentence(exc)


def _sentence(exc: RemixbotError) -> str:
    """The refusal for Discord: quota refusals carry a live relative timestamp."""
    return str(getattr(exc, "discord_message", None) or exc)


async def _read(attachment: discord.Attachment, what: str) -> bytes:
    try:
        return await attachment.read()
    except discord.HTTPException:
        raise InvalidImage(
            f"I could not download the {what} from Discord; attach it again and retry."
        ) from None


async def setup(bot: commands.Bot) -> None:
    """Load the cog; its services come from the bot (built in the composition root)."""
    # `remixbot sync` loads the cog without services: it needs only the commands' shape.
    services = getattr(bot, "services", None)
    if services is not None and not hasattr(services, "remix"):
        raise RuntimeError("cogs.remix needs the services built by bot.services.open_services")
    await bot.add_cog(Remix(bot, services))
    bot.add_dynamic_items(RerollButton)

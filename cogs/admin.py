"""/remixadmin: a server's admins run the bot from Discord. Quotas (the same store calls as
`remixbot quota …`), where /remix and its controls work, the server's queue, cancelling any job,
usage, and moderation (the prompt block list and the log channel).

Visible by default only to members with Manage Server, and checked again on every use (a
server can change who sees a command). Every answer is private, and comes after a private
"thinking…": the store may wait on another process's lock, and Discord's 3 seconds do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.app_commands import Range
from discord.ext import commands

from bot.client import RemixBot
from bot.moderation import MEMBER_BLOCKED, MEMBER_UNBLOCKED, AuditEvent
from bot.store import QuotaStatus
from bot.store.guilds import GuildRules
from bot.store.periods import PERIOD_WORDS
from bot.workflow import AlreadyEnded
from cogs._gates import roles_of
from cogs._render import error_sentence
from cogs._ui import safe_text

if TYPE_CHECKING:
    from bot.services import Services

MAX_IMAGES = 100_000
# Where members can run /remix, so what the channel list may hold: text and announcement
# channels, threads, and the text chat of voice and stage channels (Discord's picker offers
# only these; a category or a forum is never where an interaction comes from).
CommandChannel = discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel


def status_lines(member: discord.abc.User, status: QuotaStatus) -> str:
    """A member's quota here, for an admin."""
    period = PERIOD_WORDS.get(status.period, "this period")
    if status.limit is None:
        head = f"{member.mention} has unlimited images (an exempt role)."
    else:
        head = (
            f"{member.mention} has **{status.remaining}** of {status.limit + status.granted} "
            f"images left {period} ({status.used} used, {status.reserved} in progress, "
            f"{status.granted} granted)."
        )
    stamp = int(status.resets_at.timestamp())
    lines = [head, f"The quota resets <t:{stamp}:R>."]
    if status.blocked_everywhere is not None:
        reason = safe_text(status.blocked_everywhere, 300)
        lines.append(f"Blocked everywhere by the bot's owner: {reason}")
    if status.blocked_here is not None:
        lines.append(f"Blocked in this server: {safe_text(status.blocked_here, 300)}")
    return "\n".join(lines)


def rules_lines(rules: GuildRules) -> str:
    """A server's channel list, queue and moderation settings, for an admin."""
    channels = ", ".join(f"<#{c}>" for c in sorted(rules.channels)) or "none"
    where = {
        "all": "every channel",
        "allow": f"only in: {channels}",
        "deny": f"every channel except: {channels}",
    }[rules.channel_mode]
    log = f"<#{rules.log_channel_id}>" if rules.log_channel_id else "off"
    words = ", ".join(f"`{w}`" for w in rules.words) or "none"
    patterns = ", ".join(f"`{p}`" for p in rules.patterns) or "none"
    return (
        f"/remix and its controls work in {where}.\n"
        f"Queue: {'paused' if rules.paused else 'taking jobs'}. Moderation log: {log}.\n"
        f"Blocked words: {words}\nBlocked patterns: {patterns}"
    )[:1900]


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Admin(commands.GroupCog, group_name="remixadmin"):
    """Run the bot in this server: quotas, channels, the queue, jobs, usage, moderation."""

    quota = app_commands.Group(name="quota", description="Members' image quotas here")
    channels = app_commands.Group(name="channels", description="Where /remix works here")
    queue = app_commands.Group(name="queue", description="This server's remix queue")
    moderation = app_commands.Group(name="moderation", description="Prompt block list and log")

    def __init__(self, bot: RemixBot, services: Services | None) -> None:
        self.bot = bot
        self._services = services
        super().__init__()

    @property
    def services(self) -> Services:
        """The bot's services (absent only in `remixbot sync`)."""
        if self._services is None:
            raise RuntimeError("the Admin cog was loaded without services")
        return self._services

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Manage Server, checked at run time (the default permissions are only a default);
        then the private "thinking…" every subcommand answers on (`_say`), sent before any
        of them touches the store."""
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        await interaction.response.defer(ephemeral=True, thinking=True)
        return True

    async def _say(self, interaction: discord.Interaction, text: str) -> None:
        """The answer, in place of the private "thinking…"."""
        await interaction.edit_original_response(
            content=text, allowed_mentions=discord.AllowedMentions.none()
        )

    # --- quota -----------------------------------------------------------------------------

    @quota.command(name="show", description="A member's quota here")
    async def quota_show(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """A member's limit, use and reset time in this server."""
        await self._say(interaction, await self._status(interaction, member))

    async def _status(self, interaction: discord.Interaction, member: discord.Member) -> str:
        """The member's quota here, as `status_lines` says it."""
        status = await self.services.store.quota_status(
            member.id, interaction.guild_id, roles_of(member)
        )
        return status_lines(member, status)

    @quota.command(
        name="server-limit",
        description="Images per member here, in place of the bot's default (empty: the default)",
    )
    @app_commands.describe(
        images="Images per member per period, lower or higher than the default; leave out to "
        "use the default"
    )
    async def quota_server_limit(
        self, interaction: discord.Interaction, images: Range[int, 0, MAX_IMAGES] | None = None
    ) -> None:
        """The server's own limit: it replaces the bot's default here (role tiers still raise a
        member above it)."""
        guild = interaction.guild_id
        assert guild is not None
        await self.services.store.set_guild(guild, images)
        policies = await self.services.store.policies()
        default = f"{policies.default_limit} images {policies.period}"
        text = (
            f"Members here get the bot's default, {default}."
            if images is None
            else f"Members here get {images} images per period, in place of the bot's default "
            f"({default}); a role tier above it still raises a member."
        )
        await self._say(interaction, text)

    @quota.command(
        name="role", description="A role tier: images per member, above the server's limit"
    )
    async def quota_role(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        images: Range[int, 0, MAX_IMAGES] | None = None,
    ) -> None:
        """Members with the role get this many images where it is more than the server's limit
        (a member gets the highest of the server's limit and their tiers)."""
        guild = interaction.guild_id
        assert guild is not None
        await self.services.store.set_role(guild, role.id, images)
        text = (
            f"{role.mention} has no tier now."
            if images is None
            else f"Members with {role.mention} get {images} images per period."
        )
        await self._say(interaction, text)

    @quota.command(name="grant", description="Extra images for a member this period")
    async def quota_grant(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        images: Range[int, 1, MAX_IMAGES],
    ) -> None:
        """Add images to a member's allowance for the current period."""
        await self.services.store.grant(member.id, interaction.guild_id, images)
        await self._say(
            interaction, f"Granted {images}. " + await self._status(interaction, member)
        )

    @quota.command(name="reset", description="Forgive a member's charges this period")
    async def quota_reset(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Forgive what the member was charged this period (jobs in progress stay reserved)."""
        await self.services.store.reset(member.id, interaction.guild_id)
        await self._say(interaction, "Reset. " + await self._status(interaction, member))

    @quota.command(name="block", description="Refuse a member's remixes in this server")
    @app_commands.describe(reason="Shown to the member when they try")
    async def quota_block(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        reason: Range[str, 1, 300],
    ) -> None:
        """Block a member in this server (other servers are theirs to decide); the reason is
        shown to them (privately) and to the moderation log."""
        await self.services.store.block(member.id, reason, guild_id=interaction.guild_id)
        self._report(interaction, MEMBER_BLOCKED, member, reason)
        await self._say(
            interaction, f"Blocked {member.mention} in this server: {safe_text(reason, 300)}"
        )

    @quota.command(name="unblock", description="Lift this server's block on a member")
    async def quota_unblock(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Lift this server's block; a block the bot's owner set everywhere stays (only they
        can lift it, from the terminal or the dashboard)."""
        done = await self.services.store.unblock(member.id, guild_id=interaction.guild_id)
        if done.lifted:
            self._report(interaction, MEMBER_UNBLOCKED, member, "")
        text = (
            f"Unblocked {member.mention} in this server."
            if done.lifted
            else f"{member.mention} was not blocked in this server."
        )
        if done.still:
            text += (
                f" {member.mention} is still blocked everywhere the bot is: that block was set "
                "by the bot's owner, and a server's admins cannot lift it."
            )
        await self._say(interaction, text)

    def _report(
        self, interaction: discord.Interaction, kind: str, member: discord.Member, detail: str
    ) -> None:
        """To the moderation log, in the background (the admin's answer does not wait)."""
        event = AuditEvent(
            kind, interaction.guild_id, member.id, detail=detail, by_user_id=interaction.user.id
        )
        self.services.remix.moderation.report(event)

    # --- channels --------------------------------------------------------------------------

    @channels.command(
        name="mode", description="Where /remix works: everywhere, allow list, deny list"
    )
    async def channels_mode(
        self, interaction: discord.Interaction, mode: Literal["all", "allow", "deny"]
    ) -> None:
        """all: every channel; allow: only the listed channels; deny: all but the listed ones."""
        assert interaction.guild_id is not None
        rules = await self.services.store.set_channel_mode(interaction.guild_id, mode)
        await self._say(interaction, rules_lines(rules))

    @channels.command(name="add", description="Put a channel on this server's list")
    async def channels_add(self, interaction: discord.Interaction, channel: CommandChannel) -> None:
        """Add a channel to the list (the mode says whether it is allowed or denied)."""
        assert interaction.guild_id is not None
        rules = await self.services.store.set_channel(interaction.guild_id, channel.id, True)
        await self._say(interaction, rules_lines(rules))

    @channels.command(name="remove", description="Take a channel off this server's list")
    async def channels_remove(
        self, interaction: discord.Interaction, channel: CommandChannel
    ) -> None:
        """Remove a channel from the list."""
        assert interaction.guild_id is not None
        rules = await self.services.store.set_channel(interaction.guild_id, channel.id, False)
        await self._say(interaction, rules_lines(rules))

    @channels.command(name="list", description="Where /remix works, and the other settings")
    async def channels_list(self, interaction: discord.Interaction) -> None:
        """The server's settings."""
        assert interaction.guild_id is not None
        rules = await self.services.store.guild_rules(interaction.guild_id)
        await self._say(interaction, rules_lines(rules))

    # --- the queue and jobs ----------------------------------------------------------------

    @queue.command(
        name="pause", description="Take no new remixes here, and hand back the queued ones"
    )
    async def queue_pause(self, interaction: discord.Interaction) -> None:
        """New jobs from this server are refused, and its queued jobs are handed back
        (refunded, each member told); jobs already at the backend finish."""
        assert interaction.guild_id is not None
        handed = await self.services.remix.pause_server(interaction.guild_id)
        queued = f"{handed} queued remix{'' if handed == 1 else 'es'}"
        await self._say(
            interaction,
            f"Paused: new remixes here are refused until you resume. {queued} handed back, "
            "refunded (their members were told); remixes already at the backend finish.",
        )

    @queue.command(name="resume", description="Take remixes here again")
    async def queue_resume(self, interaction: discord.Interaction) -> None:
        """Take new jobs again."""
        assert interaction.guild_id is not None
        await self.services.store.set_paused(interaction.guild_id, False)
        await self._say(interaction, "Resumed: members here can remix again.")

    @app_commands.command(name="cancel", description="Cancel any queued job in this server")
    @app_commands.describe(job="The job id (from a result's footer or the progress message)")
    async def cancel(self, interaction: discord.Interaction, job: Range[int, 1]) -> None:
        """Cancel a queued job (refunded); a running one cannot be recalled."""
        found = await self.services.store.find_job(job)
        if found is None or found.guild_id != interaction.guild_id:
            await self._say(interaction, f"There is no job {job} in this server.")
            return
        try:
            await self.services.remix.cancel(found.id, None)
            text = f"Cancelled job {found.id}; <@{found.user_id}> was not charged."
        except AlreadyEnded:
            text = f"Job {found.id} has already finished ({found.state})."
        except Exception as exc:
            text = error_sentence(exc)
        await self._say(interaction, text)

    @app_commands.command(name="usage", description="Images this period, top members, the bill")
    async def usage(self, interaction: discord.Interaction) -> None:
        """This server's use of the bot in the current quota period."""
        assert interaction.guild_id is not None
        usage = await self.services.store.guild_usage(interaction.guild_id)
        start = int(usage.period_start.timestamp())
        top = (
            "\n".join(f"{n}. <@{user}>: {images}" for n, (user, images) in enumerate(usage.top, 1))
            or "nobody yet"
        )
        unknown = (
            f" (+{usage.unknown_bills} job(s) with an unknown bill)" if usage.unknown_bills else ""
        )
        text = (
            f"Since <t:{start}:f> ({usage.period} period): **{usage.images}** images delivered "
            f"to members.\nThe backend billed {usage.billed} images{unknown}.\nTop members:\n{top}"
        )
        await self._say(interaction, text)

    # --- moderation ------------------------------------------------------------------------

    @moderation.command(name="block", description="Refuse prompts with a word or pattern")
    @app_commands.describe(
        kind="word: a whole word or phrase, any case; pattern: a regular expression",
        text="The word, phrase or pattern",
    )
    async def moderation_block(
        self,
        interaction: discord.Interaction,
        kind: Literal["word", "pattern"],
        text: Range[str, 1, 200],
    ) -> None:
        """Add to the prompt block list (refused before anything is charged)."""
        assert interaction.guild_id is not None
        rules = await self.services.store.set_prompt_block(interaction.guild_id, kind, text)
        await self._say(interaction, rules_lines(rules))

    @moderation.command(name="unblock", description="Take a word or pattern off the block list")
    async def moderation_unblock(
        self,
        interaction: discord.Interaction,
        kind: Literal["word", "pattern"],
        text: Range[str, 1, 200],
    ) -> None:
        """Remove from the prompt block list."""
        assert interaction.guild_id is not None
        rules = await self.services.store.set_prompt_block(
            interaction.guild_id, kind, text, blocked=False
        )
        await self._say(interaction, rules_lines(rules))

    @moderation.command(name="log", description="Where refusals, blocks and safety rejections go")
    @app_commands.describe(channel="The log channel; leave out to turn the log off")
    async def moderation_log(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | None = None,
    ) -> None:
        """Set (or turn off) the moderation log channel."""
        assert interaction.guild_id is not None
        rules = await self.services.store.set_log_channel(
            interaction.guild_id, channel.id if channel else None
        )
        await self._say(interaction, rules_lines(rules))


async def setup(bot: commands.Bot) -> None:
    """Load the admin commands (services come from the bot, as for the Remix cog)."""
    if not isinstance(bot, RemixBot):
        raise RuntimeError("cogs.admin runs on bot.client.RemixBot")
    cog = Admin(bot, bot.services)
    await bot.add_cog(cog)

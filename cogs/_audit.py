"""A server's moderation log: refused prompts, member blocks and the backend's safety
rejections, posted to the channel its admins chose (bot/moderation.py makes the events)."""

from __future__ import annotations

import logging

import discord

from bot.moderation import AuditEvent
from bot.store import Store
from cogs._ui import safe_text

log = logging.getLogger(__name__)

AUDIT_COLOUR = discord.Colour(0xE67E22)


def audit_embed(event: AuditEvent) -> discord.Embed:
    """One event as the log channel shows it: who, which job, the prompt (shown literally)."""
    embed = discord.Embed(title=event.kind.capitalize(), colour=AUDIT_COLOUR)
    if event.prompt:
        embed.description = safe_text(event.prompt)
    embed.add_field(name="Member", value=f"<@{event.user_id}> (`{event.user_id}`)", inline=True)
    if event.job_id is not None:
        embed.add_field(name="Job", value=f"`{event.job_id}`", inline=True)
    if event.by_user_id is not None:
        embed.add_field(name="By", value=f"<@{event.by_user_id}>", inline=True)
    if event.detail:
        embed.add_field(name="Detail", value=safe_text(event.detail, 1000), inline=False)
    embed.timestamp = discord.utils.utcnow()
    return embed


class AuditPoster:
    """The moderation sink: posts each event to its server's log channel, if it has one."""

    def __init__(self, client: discord.Client, store: Store) -> None:
        self.client = client
        self.store = store

    async def __call__(self, event: AuditEvent) -> None:
        """Post the event (a server without a log channel, or a DM, logs nothing)."""
        if event.guild_id is None:
            return
        rules = await self.store.guild_rules(event.guild_id)
        if rules.log_channel_id is None:
            return
        channel = self.client.get_partial_messageable(rules.log_channel_id)
        try:
            await channel.send(
                embed=audit_embed(event), allowed_mentions=discord.AllowedMentions.none()
            )
        except discord.HTTPException as exc:
            log.warning(
                "could not post to the moderation log of server %s (HTTP %s)",
                event.guild_id,
                exc.status,
            )

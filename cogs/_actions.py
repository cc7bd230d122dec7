"""What the member controls that start no job do in Discord: delete a result, send it by DM,
show a job again (/show), list a member's jobs (/jobs). The Remix cog decides who may; these
only act."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import discord

from bot.intake import ImagePool, UploadFile
from bot.media import sniff_format
from bot.store import Job, Store
from cogs._controls import result_view
from cogs._publish import DEFAULT_FILE_LIMIT, Poster, to_discord
from cogs._ui import job_embed

log = logging.getLogger(__name__)

# Discord's error code when a user does not accept DMs from the bot.
CANNOT_DM = 50007
NO_IMAGES_NOTE = "The images are no longer kept here; the link opens the original."


def result_files(job: Job, images: Sequence[bytes]) -> list[UploadFile]:
    """A job's kept images as files named like its posted results."""
    files = []
    for n, data in enumerate(images, start=1):
        suffix = {"JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif"}.get(
            sniff_format(data) or "", ".png"
        )
        files.append(UploadFile(f"remix-{job.id}-{n}{suffix}", data))
    return files


async def delete_result(
    client: discord.Client, job: Job, channel_id: int, message_id: int | None
) -> int:
    """Delete the pressed message and, when it is one of them, the job's other result messages
    in this channel; the books are untouched. Returns how many went."""
    ids = {message_id} if message_id is not None else set()
    if message_id in job.message_ids and channel_id == job.message_channel_id:
        ids.update(job.message_ids)
    channel = client.get_partial_messageable(channel_id)
    deleted = 0
    for mid in sorted(i for i in ids if i is not None):
        try:
            await channel.get_partial_message(mid).delete()
            deleted += 1
        except discord.NotFound:
            continue  # gone already (deleted by hand, or a /show copy elsewhere)
    return deleted


async def send_by_dm(
    client: discord.Client, pool: ImagePool, store: Store, user_id: int, job: Job
) -> None:
    """DM the job's images (when still kept) and details to a member.

    Raises discord.Forbidden when the member does not accept DMs from the bot.
    """
    channel = await client.create_dm(discord.Object(id=user_id))
    files = result_files(job, await store.result_images(job.id))
    embed = job_embed(job, None if files else NO_IMAGES_NOTE)
    if not files:
        await channel.send(embed=embed)
        return

    async def send(n: int, batch: list[UploadFile]) -> int:
        message = await channel.send(
            embed=embed if n == 0 else discord.utils.MISSING, files=to_discord(batch)
        )
        return message.id

    await Poster(pool, DEFAULT_FILE_LIMIT).post_fitted(files, send, channel.id)


def dm_refused(exc: discord.HTTPException) -> bool:
    """True when Discord refused a DM because the member's DMs are closed to the bot."""
    return exc.code == CANNOT_DM or exc.status == 403


async def show_job(
    interaction: discord.Interaction, pool: ImagePool, store: Store, job: Job
) -> tuple[int, ...]:
    """Post a job again on a deferred interaction: its kept images (or a link to the original)
    with its details and controls; the messages are recorded with the job, so its controls and
    reactions work on them. Returns the message ids."""
    files = result_files(job, await store.result_images(job.id))
    embed = job_embed(job, None if files else NO_IMAGES_NOTE)
    view = result_view(job.id, len(files) or job.images_delivered or 1)
    if not files:
        message = await interaction.edit_original_response(embed=embed, view=view)
        ids: tuple[int, ...] = (message.id,)
    else:

        async def send(n: int, batch: list[UploadFile]) -> int:
            if n == 0:
                first = await interaction.edit_original_response(
                    embed=embed, attachments=to_discord(batch), view=view
                )
                return first.id
            more = await interaction.followup.send(files=to_discord(batch), wait=True)
            return more.id

        posted = await Poster(pool, interaction.filesize_limit).post_fitted(
            files, send, interaction.channel_id
        )
        ids = posted.message_ids
    with contextlib.suppress(Exception):  # the post stands; only its reactions would miss it
        await store.record_messages(job.id, ids, None)
    return ids

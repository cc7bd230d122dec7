"""The images of a message, for "Remix this image": its image attachments and the images of its
embeds, as the context-menu interaction carries them.

Without the privileged message-content intent Discord leaves other members' attachments out of
messages the bot fetches, but a context-menu target always comes whole. So the images seen then
are remembered (by channel and message, for as long as a modal may stay open) and used when the
modal is submitted; after a restart the message is fetched again, which works for the bot's own
results, DMs, and bots with the intent.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import discord

from bot.errors import InvalidImage

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif")
IMAGE_SUFFIXES += (".heic", ".heif")
# How long (seconds) and how many picks are remembered between the menu and the modal.
PICK_SECONDS = 15 * 60.0
MAX_REMEMBERED = 1000


@dataclass(frozen=True)
class MessageImage:
    """One image of a message: an attachment (size known) or an embed's image (Discord's media
    proxy serves it; the embed's own URL is never fetched)."""

    name: str
    attachment: discord.Attachment | None = None
    proxy_url: str | None = None

    @property
    def size(self) -> int | None:
        """Bytes, when Discord says (attachments only)."""
        return self.attachment.size if self.attachment is not None else None

    async def read(self, http: discord.http.HTTPClient, limit: int) -> bytes:
        """Download the image (InvalidImage when Discord no longer has it or it is too big)."""
        try:
            if self.attachment is not None:
                data = await self.attachment.read()
            else:
                assert self.proxy_url is not None
                data = await http.get_from_cdn(self.proxy_url)
        except discord.HTTPException:
            raise InvalidImage(
                "I could not download that image from Discord; open the menu on it again."
            ) from None
        if len(data) > limit:
            raise InvalidImage(
                f"That image is {len(data) / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB."
            )
        return data


def images_of(message: discord.Message) -> list[MessageImage]:
    """The message's image attachments, then its embeds' images, in order."""
    found = [
        MessageImage(a.filename, attachment=a)
        for a in message.attachments
        if (a.content_type or "").startswith("image/")
        or a.filename.lower().endswith(IMAGE_SUFFIXES)
    ]
    for embed in message.embeds:
        for media in (embed.image, embed.thumbnail):
            if media.proxy_url:
                found.append(MessageImage(media.url or "embedded image", proxy_url=media.proxy_url))
    return found


class RememberedImages:
    """The images of context-menu targets, by (channel, message), for a while."""

    def __init__(self, ttl: float = PICK_SECONDS, limit: int = MAX_REMEMBERED) -> None:
        self.ttl = ttl
        self.limit = limit
        self._seen: OrderedDict[tuple[int, int], tuple[float, list[MessageImage]]] = OrderedDict()

    def remember(self, channel_id: int, message_id: int, images: list[MessageImage]) -> None:
        """Keep a message's images until the modal is submitted (or they go stale)."""
        self._seen[(channel_id, message_id)] = (time.monotonic(), images)
        self._seen.move_to_end((channel_id, message_id))
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)

    def recall(self, channel_id: int, message_id: int) -> list[MessageImage] | None:
        """The images seen, or None when not remembered (or too old)."""
        entry = self._seen.get((channel_id, message_id))
        if entry is None or time.monotonic() - entry[0] > self.ttl:
            return None
        return entry[1]

    async def images(
        self, client: discord.Client, channel_id: int, message_id: int
    ) -> list[MessageImage]:
        """The images seen, or the message fetched again (after a restart)."""
        images = self.recall(channel_id, message_id)
        if images is not None:
            return images
        try:
            message = await client.get_partial_messageable(channel_id).fetch_message(message_id)
        except discord.HTTPException:
            return []
        return images_of(message)

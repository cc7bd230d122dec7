"""Presenters: show a job's progress and post its results, by interaction or in the channel.

An interaction token lives 15 minutes; after that (or when Discord says it is gone) results go to
the channel with the bot token, as a reply to the request, so nothing paid for is lost. A reply
needs Read Message History: where the bot lacks it, the post is a plain message that mentions
the member.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import discord

from bot.intake import ImagePool, UploadFile
from bot.jobs import Progress
from bot.lifecycle import Ending, Exit, Outcome, Posted
from cogs._render import ending_sentence
from cogs._ui import progress_line, result_embed

# Builds the persistent controls under a message from a job id (the cog owns the buttons).
ViewFor = Callable[[int], discord.ui.View]
# The controls under a result: from the job id and how many images it shows (for Vary).
ResultViewFor = Callable[[int, int], discord.ui.View]


@dataclass(frozen=True)
class Controls:
    """The views presenters attach: result controls, Cancel under progress, and Retry under a
    job lost in a crash."""

    result: ResultViewFor
    retry: ViewFor
    progress: ViewFor

    def for_ending(self, ending: Ending) -> discord.ui.View | None:
        """Retry under a job a crash lost at the backend; nothing under other endings."""
        return self.retry(ending.job_id) if ending.exit is Exit.CRASHED_AT_BACKEND else None


log = logging.getLogger(__name__)

# Discord's per-file upload limit for a server without boosts, and for DMs.
DEFAULT_FILE_LIMIT = 10 * 1024 * 1024
# Sends one batch of files (the n-th message of a result) and returns the message id.
SendBatch = Callable[[int, list[UploadFile]], Awaitable[int]]
# Stop using the interaction token a minute early: an edit racing the 15-minute cut-off is lost.
TOKEN_MARGIN = dt.timedelta(seconds=60)
# Discord error codes meaning the interaction token no longer works.
DEAD_TOKEN_CODES = {10015, 10062, 50027}
# Discord's code for a permission the bot lacks (for a reply: Read Message History).
MISSING_PERMISSIONS = 50013


def _token_dead(exc: discord.HTTPException) -> bool:
    return exc.code in DEAD_TOKEN_CODES or exc.status in (401, 404)


async def read_files(outcome: Outcome) -> list[UploadFile]:
    """Read the delivered images from disk off the event loop."""

    def read() -> list[UploadFile]:
        return [
            UploadFile(f"remix-{outcome.job.id}-{n + 1}{img.path.suffix}", img.path.read_bytes())
            for n, img in enumerate(outcome.delivery.images)
        ]

    return await asyncio.to_thread(read)


def to_discord(batch: Sequence[UploadFile]) -> list[discord.File]:
    """discord.File objects over in-memory copies (re-seekable if discord.py retries)."""
    return [discord.File(io.BytesIO(f.data), filename=f.filename) for f in batch]


def can_reply(interaction: discord.Interaction) -> bool:
    """False when the interaction says the bot lacks Read Message History where it came from:
    Discord refuses a reply there, so the bot's channel posts are plain messages. Permissions
    not sent (allowed for components) count as unknown, not as missing."""
    perms = interaction.app_permissions
    return perms.value == 0 or perms.read_message_history


def channel_file_limit(client: discord.Client, channel_id: int) -> int:
    """The per-file upload limit of the bot token in a channel: its server's (by boost tier)
    when the server is known, else Discord's default. An interaction's attachment_size_limit is
    not it: that counts the member's own limit and binds only responses to the interaction."""
    guild = getattr(client.get_channel(channel_id), "guild", None)
    return guild.filesize_limit if isinstance(guild, discord.Guild) else DEFAULT_FILE_LIMIT


class Poster:
    """Shared posting logic: fit files, post batches, re-fit once on 413."""

    def __init__(self, pool: ImagePool, file_limit: int) -> None:
        self.pool = pool
        self.file_limit = file_limit or DEFAULT_FILE_LIMIT

    async def batches(self, files: list[UploadFile], shrink: int = 1) -> list[list[UploadFile]]:
        """Files fitted under the per-file and per-message limits (halved per shrink step)."""
        per_file = self.file_limit // shrink
        per_message = (25 * 1024 * 1024) // shrink
        return await self.pool.fit_for_upload(files, per_file, per_message)

    async def post_fitted(
        self, files: list[UploadFile], send: SendBatch, channel_id: int | None
    ) -> Posted:
        """Fit the files and send them batch by batch; re-fit smaller once on a 413; after a
        failure part-way, report what was posted (it was delivered, so it is charged)."""
        for shrink in (1, 2):
            batches = await self.batches(files, shrink)
            ids: list[int] = []
            posted = 0
            try:
                for n, batch in enumerate(batches):
                    ids.append(await send(n, batch))
                    posted += len(batch)
            except asyncio.CancelledError:
                if ids:  # cut off part-way: what is in the channel was delivered
                    log.warning("posting cut off after %d message(s)", len(ids))
                    return Posted(tuple(ids), channel_id, posted)
                raise
            except Exception as exc:
                too_large = isinstance(exc, discord.HTTPException) and exc.status == 413
                if too_large and shrink == 1 and not ids:
                    log.info("upload too large (413); fitting the files smaller, once more")
                    continue
                if ids:
                    log.warning("posting stopped after %d message(s)", len(ids), exc_info=True)
                    return Posted(tuple(ids), channel_id, posted)
                raise
            return Posted(tuple(ids), channel_id, posted)
        raise RuntimeError("unreachable")


class InteractionPresenter(Poster):
    """Progress by editing the deferred response; results on it and in followups."""

    def __init__(
        self, interaction: discord.Interaction, pool: ImagePool, controls: Controls
    ) -> None:
        super().__init__(pool, interaction.filesize_limit)
        self.controls = controls
        self.interaction = interaction
        self.client = interaction.client
        self.channel_id = interaction.channel_id
        self.user_id = interaction.user.id
        self.original_id: int | None = None
        self._dead = False
        # Progress edits and the final edit go through one lock, and nothing after the final one:
        # a late "Uploading…" must never land on top of the result.
        self._edits = asyncio.Lock()
        self._final = False
        self._shown: str | None = None  # the progress line on the response now
        self._fallback: ChannelPresenter | None = None

    def token_alive(self) -> bool:
        """True while the interaction token may still be used."""
        return (
            not self._dead and discord.utils.utcnow() < self.interaction.expires_at - TOKEN_MARGIN
        )

    async def remember_original(self) -> int | None:
        """Fetch the deferred response's message id (the reply target for late results)."""
        try:
            message = await self.interaction.original_response()
            self.original_id = message.id
        except discord.HTTPException:
            self.original_id = None
        # Only the id is needed. discord.py keeps the fetched message on the interaction, and the
        # message points back at it: a cycle of some fifteen objects per queued job, which only
        # the garbage collector's full pass (a loop stall growing with the queue) would free.
        self.interaction._original_response = None
        return self.original_id

    async def progress(self, progress: Progress) -> None:
        """Edit the deferred response with the queue position or stage, unless it already says
        that (a job's start and its "generating" stage read alike: one edit, not two)."""
        line = progress_line(progress)
        async with self._edits:
            if self._final or not self.token_alive() or line == self._shown:
                return
            try:
                await self.interaction.edit_original_response(
                    content=line, view=self.controls.progress(progress.job_id)
                )
                self._shown = line
            except discord.HTTPException as exc:
                if _token_dead(exc):
                    self._dead = True
                else:
                    raise

    async def deliver(self, outcome: Outcome) -> Posted:
        """Post the images (edit the response, then followups) or fall back to the channel."""
        files = await read_files(outcome)
        async with self._edits:
            self._final = True
            return await self._deliver(outcome, files)

    async def _deliver(self, outcome: Outcome, files: list[UploadFile]) -> Posted:
        embed = result_embed(outcome, self.user_id)
        view = self.controls.result(outcome.job.id, len(outcome.delivery.images))
        if self.token_alive():
            try:
                return await self._by_webhook(files, embed, view)
            except discord.HTTPException as exc:
                if not _token_dead(exc):
                    raise
                self._dead = True
                log.info(
                    "job %s: interaction token expired; posting to the channel", outcome.job.id
                )
        # Fitted anew: the channel's upload limit is the server's, not the interaction's.
        return await self._channel().post(files, embed, view)

    def _channel(self) -> ChannelPresenter:
        """The same job shown with the bot token, replying to the deferred response (a plain
        message where the bot may not reply)."""
        if self._fallback is None:
            self._fallback = ChannelPresenter(
                self.client,
                self.channel_id,
                self.original_id,
                self.user_id,
                self.pool,
                self.controls,
                replies=can_reply(self.interaction),
            )
        return self._fallback

    async def _by_webhook(
        self, files: list[UploadFile], embed: discord.Embed, view: discord.ui.View
    ) -> Posted:
        async def send(n: int, batch: list[UploadFile]) -> int:
            if n > 0:
                return await self._followup(batch)
            first = await self.interaction.edit_original_response(
                content="", embed=embed, attachments=to_discord(batch), view=view
            )
            return first.id

        return await self.post_fitted(files, send, self.channel_id)

    async def _followup(self, batch: list[UploadFile]) -> int:
        """One more message of files: a followup, or a channel message once the token is gone."""
        if self.token_alive():
            try:
                message = await self.interaction.followup.send(files=to_discord(batch), wait=True)
                return message.id
            except discord.HTTPException as exc:
                if not _token_dead(exc):
                    raise
                self._dead = True
        return await self._channel().send_files(batch)

    async def end(self, ending: Ending) -> None:
        """Show how the job ended on the deferred response, or in the channel once the token is
        gone."""
        async with self._edits:
            self._final = True
            await self.say(ending_sentence(ending), self.controls.for_ending(ending))

    async def say(
        self, message: str, view: discord.ui.View | None = None, *, warn: bool = True
    ) -> None:
        """Replace the deferred response with one sentence (and optional controls); `warn`
        marks how a job ended (a refusal is said plainly)."""
        self._shown = None  # the response says something else from here
        if self.token_alive():
            try:
                await self.interaction.edit_original_response(
                    content=f"⚠️ {message}" if warn else message,
                    embed=None,
                    view=view,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
                return
            except discord.HTTPException as exc:
                if not _token_dead(exc):
                    raise
                self._dead = True
        await self._channel().say(message, view, warn=warn)


async def thinking(
    interaction: discord.Interaction,
    pool: ImagePool,
    controls: Controls,
    *,
    remember: bool = True,
) -> InteractionPresenter:
    """The public "thinking…" and its presenter (for a control too: thinking=True makes a new
    message, where a plain component defer would edit the result itself). With
    `remember=False` the caller asks for the message's id (`remember_original`) itself, beside
    other work."""
    await interaction.response.defer(thinking=True)
    presenter = InteractionPresenter(interaction, pool, controls)
    if remember:
        await presenter.remember_original()
    return presenter


class ChannelPresenter(Poster):
    """Progress and results as channel messages with the bot token, replying to a message
    (plain messages where replies are not allowed: `replies=False`, or Discord refused one)."""

    def __init__(
        self,
        client: discord.Client,
        channel_id: int | None,
        reply_to: int | None,
        user_id: int,
        pool: ImagePool,
        controls: Controls,
        *,
        status_id: int | None = None,
        replies: bool = True,
    ) -> None:
        if channel_id is None:
            raise ValueError("a channel presenter needs a channel")
        super().__init__(pool, channel_file_limit(client, channel_id))
        self.replies = replies
        self.controls = controls
        self.channel = client.get_partial_messageable(channel_id)
        self.channel_id = channel_id
        self.reply_to = reply_to
        self.user_id = user_id
        # A status message this presenter edits; `status_id` adopts one the bot posted before
        # (a request's "thinking…" after a restart), which is then edited, never deleted.
        self.status: discord.PartialMessage | discord.Message | None = (
            self.channel.get_partial_message(status_id) if status_id is not None else None
        )
        self._adopted = status_id is not None
        self._edits = asyncio.Lock()
        self._final = False
        self._shown: str | None = None  # the progress text of the status reply now

    async def announce(self, text: str) -> None:
        """Post the status reply now (raises discord.HTTPException if the bot cannot post)."""
        async with self._edits:
            self.status = await self._send(
                reply=True,
                content=f"<@{self.user_id}> {text}",
                allowed_mentions=discord.AllowedMentions(users=False),
            )
            self._shown = None

    def _reference(self) -> discord.MessageReference | None:
        if self.reply_to is None or not self.replies:
            return None
        return discord.MessageReference(
            message_id=self.reply_to, channel_id=self.channel_id, fail_if_not_exists=False
        )

    async def _send(
        self, *, reply: bool, files: Sequence[UploadFile] = (), **fields: Any
    ) -> discord.Message:
        """Send one message, as a reply when `reply` (and replies work here). A reply Discord
        refuses for a missing permission (Read Message History) goes once more as a plain
        message, and later ones are plain from the start: the member's mention in the text
        still says whose it is. A refused reply created nothing, so the plain one is not a second
        message (both carry one nonce, which Discord dedupes only with `enforce_nonce`)."""
        reference = self._reference() if reply else None
        nonce = secrets.randbits(64)
        try:
            return await self.channel.send(
                reference=reference, nonce=nonce, **_with_files(files, fields)
            )
        except discord.Forbidden as exc:
            if reference is None or exc.code != MISSING_PERMISSIONS:
                raise
            log.info(
                "channel %s: the reply was refused (missing permission); posting it plainly",
                self.channel_id,
            )
            self.replies = False
        return await self.channel.send(nonce=nonce, **_with_files(files, fields))

    async def progress(self, progress: Progress) -> None:
        """Post (then edit) one status reply."""
        async with self._edits:
            if not self._final:
                await self._show(progress)

    async def _show(self, progress: Progress) -> None:
        text = f"<@{self.user_id}> {progress_line(progress)}"
        if self.status is not None and text == self._shown:
            return  # it already says that
        mentions = discord.AllowedMentions(users=False)
        view = self.controls.progress(progress.job_id)
        if self.status is not None and not await self._edit_adopted(content=text, view=view):
            await self.status.edit(content=text, view=view)
        if self.status is None:
            self.status = await self._send(
                reply=True, content=text, allowed_mentions=mentions, view=view
            )
        self._shown = text

    async def _edit_adopted(self, **fields: Any) -> bool:
        """Edit the adopted request message; False when none is adopted. Discord documents
        editing a deferred response with the interaction's token, not the bot's, and a crash
        can leave it "thinking…": refused, it is let go (`status` None) and the caller posts a
        new message instead."""
        if not self._adopted or self.status is None:
            return False
        try:
            await self.status.edit(**fields)
            return True
        except discord.HTTPException as exc:
            log.info("the request message could not be edited (HTTP %s); posting anew", exc.status)
            self.status, self._adopted = None, False
            return True

    async def post(
        self, files: list[UploadFile], embed: discord.Embed, view: discord.ui.View
    ) -> Posted:
        """Send the results as replies (embed and Reroll on the first), re-fitting once on 413."""
        mention = discord.AllowedMentions(users=[discord.Object(self.user_id)])

        async def send(n: int, batch: list[UploadFile]) -> int:
            # One message per batch, whether or not its reply had to be sent again plainly
            # (`_send` returns the one message made): the count of posted images stays true.
            first = n == 0
            message = await self._send(
                reply=first,
                files=batch,
                content=f"<@{self.user_id}>" if first else None,
                embed=embed if first else discord.utils.MISSING,
                view=view if first else discord.utils.MISSING,
                allowed_mentions=mention,
            )
            return message.id

        posted = await self.post_fitted(files, send, self.channel_id)
        # The status message goes once the result is in the books (the lifecycle calls `then`).
        return dataclasses.replace(posted, then=self._clear_status)

    async def send_files(self, batch: list[UploadFile]) -> int:
        """Send one message of files (no embed) and return its id."""
        message = await self.channel.send(files=to_discord(batch))
        return message.id

    async def deliver(self, outcome: Outcome) -> Posted:
        """Post the job's images in the channel."""
        files = await read_files(outcome)
        async with self._edits:
            self._final = True
            view = self.controls.result(outcome.job.id, len(outcome.delivery.images))
            return await self.post(files, result_embed(outcome, self.user_id), view)

    async def end(self, ending: Ending) -> None:
        """Say how the job ended, editing the status reply if there is one."""
        async with self._edits:
            self._final = True
            await self.say(ending_sentence(ending), self.controls.for_ending(ending))

    async def say(
        self, message: str, view: discord.ui.View | None = None, *, warn: bool = True
    ) -> None:
        """One sentence for the member: the status message edited, or a new reply."""
        text = f"<@{self.user_id}> ⚠️ {message}" if warn else f"<@{self.user_id}> {message}"
        fields: dict[str, Any] = {
            "content": text,
            "embed": None,
            "view": view,
            "allowed_mentions": discord.AllowedMentions.none(),
        }
        if self.status is not None and not await self._edit_adopted(**fields):
            await self.status.edit(**fields)
        if self.status is None:
            await self._send(
                reply=True,
                content=text,
                view=view or discord.utils.MISSING,
                allowed_mentions=discord.AllowedMentions(users=[discord.Object(self.user_id)]),
            )

    async def _clear_status(self) -> None:
        if self.status is None:
            return
        try:
            if self._adopted:  # the member's own request message: say where the result went
                await self.status.edit(
                    content="✅ Done: the result is in the reply below.", view=None
                )
            else:
                await self.status.delete()
        except discord.HTTPException:
            pass
        self.status = None


def _with_files(files: Sequence[UploadFile], fields: dict[str, Any]) -> dict[str, Any]:
    """The send's fields with fresh discord.File objects (a failed send may have used them)."""
    return {**fields, "files": to_discord(files)} if files else fields

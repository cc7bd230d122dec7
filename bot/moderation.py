"""The server gates every new job passes (channel list, paused queue, prompt block list) and the
moderation events a server's log channel receives.

Discord-free: the refusals are errors with one sentence each (a blocked prompt is never repeated
back), and the events go to an `AuditSink` the Discord side installs, in the background: a slow
or failing log channel never holds up a member's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bot.background import Background
from bot.errors import InvalidRequest, RemixbotError, RemixRejected
from bot.jobs import Progress
from bot.lifecycle import Ending, Exit, Outcome, Posted, Presenter
from bot.store import Store
from bot.store.guilds import GuildRules

log = logging.getLogger(__name__)


class PromptBlocked(InvalidRequest):
    """The prompt has a word or pattern on the server's block list (never repeated back)."""

    def __init__(self) -> None:
        super().__init__(
            "That prompt uses a word or phrase this server does not allow; change it and try again."
        )


class ChannelClosed(InvalidRequest):
    """/remix and the controls are not allowed in this channel (the server's channel list)."""

    def __init__(self) -> None:
        super().__init__("Remixing is not allowed in this channel; ask a server admin where it is.")


class ServerPaused(RemixbotError):
    """The server's admins paused its queue: no new jobs until they resume it."""

    exit_code = 4

    def __init__(self) -> None:
        super().__init__("Remixing is paused on this server by its admins; try again later.")


# Kinds of moderation events, as a server's log channel shows them.
PROMPT_REFUSED = "prompt refused"
MEMBER_BLOCKED = "member blocked"
MEMBER_UNBLOCKED = "member unblocked"
SAFETY_REJECTED = "backend safety rejection"


@dataclass(frozen=True)
class AuditEvent:
    """One moderation event for a server's log channel (guild None: a DM, not logged)."""

    kind: str
    guild_id: int | None
    user_id: int
    prompt: str | None = None
    job_id: int | None = None
    detail: str = ""
    by_user_id: int | None = None  # the admin who acted, for blocks


AuditSink = Callable[[AuditEvent], Awaitable[None]]
# How long one event may take to reach the log channel before it is given up (logged).
REPORT_SECONDS = 30.0
# How long a clean stop waits for the log-channel posts still on their way, while Discord is
# still connected; the rest are dropped (one INFO line), not cut off by the closing session.
REPORT_GRACE_SECONDS = 5.0


async def _nowhere(event: AuditEvent) -> None:
    """The sink until the Discord side installs one: the log only."""
    log.info("moderation: %s (user %s, job %s)", event.kind, event.user_id, event.job_id)


class Moderation:
    """Checks a new job against its server's rules and reports moderation events."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sink: AuditSink = _nowhere
        # Reports running in the background (kept referenced until they finish).
        self._reports = Background()

    async def rules(self, guild_id: int | None) -> GuildRules | None:
        """The server's rules (None in DMs, which have no server rules)."""
        return None if guild_id is None else await self.store.guild_rules(guild_id)

    async def paused(self, guild_id: int | None) -> bool:
        """True when the server's admins paused it (never in DMs)."""
        rules = await self.rules(guild_id)
        return rules is not None and rules.paused

    async def check(
        self, guild_id: int | None, channel_id: int | None, user_id: int, prompt: str | None
    ) -> None:
        """Raise ChannelClosed, ServerPaused or PromptBlocked (reported to the log channel)."""
        rules = await self.rules(guild_id)
        if rules is None:
            return
        if not rules.channel_allowed(channel_id):
            raise ChannelClosed()
        if rules.paused:
            raise ServerPaused()
        if prompt is not None and rules.blocks_prompt(prompt):
            self.report(AuditEvent(PROMPT_REFUSED, guild_id, user_id, prompt=prompt))
            raise PromptBlocked()

    def report(self, event: AuditEvent) -> None:
        """Hand an event to the sink in the background: the refusal or the admin's answer goes
        out at once; a sink that fails, or takes over REPORT_SECONDS, is logged and given up."""
        self.in_background(self._deliver(event))

    def in_background(self, report: Coroutine[Any, Any, None]) -> None:
        """Run a report without waiting for it (kept until it ends, or until `finish_reports`)."""
        self._reports.spawn(report)

    async def finish_reports(self, grace: float = REPORT_GRACE_SECONDS) -> int:
        """On a clean stop, before Discord's session closes: wait up to `grace` seconds for the
        reports in flight (and any they start), then cancel the rest quietly; how many were
        dropped."""
        dropped = await self._reports.finish(grace)
        if dropped:
            log.info(
                "stopping: %d moderation log post(s) not sent within %gs were dropped",
                dropped,
                grace,
            )
        return dropped

    async def _deliver(self, event: AuditEvent) -> None:
        try:
            async with asyncio.timeout(REPORT_SECONDS):
                await self.sink(event)
        except Exception:  # a time-out too: the event is dropped, the job or command goes on
            log.warning("could not report a moderation event (%s)", event.kind, exc_info=True)

    def watching(self, presenter: Presenter, guild_id: int | None, user_id: int) -> Presenter:
        """`presenter`, reporting the backend's safety rejections of the job it shows."""
        if guild_id is None:
            return presenter
        return _SafetyWatch(presenter, self, guild_id, user_id)


class _SafetyWatch:
    """A presenter that reports safety rejections (withheld images, refused prompts) and
    otherwise passes everything through."""

    def __init__(
        self, inner: Presenter, moderation: Moderation, guild_id: int, user_id: int
    ) -> None:
        self.inner = inner
        self.moderation = moderation
        self.guild_id = guild_id
        self.user_id = user_id

    async def progress(self, progress: Progress) -> None:
        """Pass progress through."""
        await self.inner.progress(progress)

    async def deliver(self, outcome: Outcome) -> Posted:
        """Post the result; report images the safety filter withheld."""
        posted = await self.inner.deliver(outcome)
        if outcome.delivery.withheld:
            # In the background: the posted result's books come first, a log channel after.
            self.moderation.in_background(
                self._report(
                    outcome.job.id,
                    outcome.request.prompt,
                    f"{outcome.delivery.withheld} image(s) withheld by the safety filter",
                )
            )
        return posted

    async def end(self, ending: Ending) -> None:
        """Say how the job ended; report it when the backend's safety check was the reason."""
        await self.inner.end(ending)
        delivery, error = ending.delivery, ending.error
        if ending.exit is Exit.NOTHING_DELIVERED and delivery is not None and delivery.withheld:
            detail = "every image withheld by the safety filter"
        elif isinstance(error, RemixRejected) and error.safety:
            detail = str(error)
        else:
            return
        self.moderation.in_background(self._report(ending.job_id, None, detail))

    async def _report(self, job_id: int, prompt: str | None, detail: str) -> None:
        if prompt is None:
            try:
                job = await self.moderation.store.find_job(job_id)
            except Exception:
                log.warning("job %s: no prompt for its moderation report", job_id, exc_info=True)
                job = None
            prompt = str(job.request.get("prompt", "")) if job is not None else None
        event = AuditEvent(
            SAFETY_REJECTED,
            self.guild_id,
            self.user_id,
            prompt=prompt,
            job_id=job_id,
            detail=detail,
        )
        self.moderation.report(event)

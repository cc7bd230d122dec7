"""The project's error taxonomy: every error carries one sentence a user can act on."""

from __future__ import annotations


class RemixbotError(Exception):
    """Base class: ``str(error)`` is the one-sentence message shown to a user or admin."""

    exit_code = 1


class SettingsError(RemixbotError):
    """A setting is missing or invalid; raised once, at start."""

    exit_code = 2


class InvalidRequest(RemixbotError, ValueError):
    """The user's options are invalid (field, value, what is allowed); nothing was charged."""

    exit_code = 2


class InvalidImage(RemixbotError, ValueError):
    """The user's image cannot be used (format, size, damage); nothing was charged."""

    exit_code = 2


class QuotaRefused(RemixbotError):
    """The user's quota (or a block) refuses the job; nothing was charged."""

    exit_code = 3


class RemixError(RemixbotError):
    """A backend call failed; subclasses say whether it may have run (and been billed)."""

    exit_code = 1
    # True when the backend may have run (and billed) the request: never resubmit on our own.
    may_have_run = False


class RemixRejected(RemixError):
    """400/422: the backend refused the request itself (bad option, safety check); not billed.

    ``safety`` marks a refusal by the backend's safety check (Ideogram answers those, and only
    those, with 422), so moderation reports it without reading the backend's wording.
    """

    def __init__(self, message: str, *, safety: bool = False) -> None:
        super().__init__(message)
        self.safety = safety


class RemixAuthError(RemixError):
    """401/402/403: the bot's key is missing, wrong, out of credit or not allowed; an admin problem."""


class RemixRateLimited(RemixError):
    """429: the backend did not run the request; try again after ``retry_after`` seconds.

    ``limit`` is the in-flight limit the backend stated (Ideogram's ``max_inflight_requests``).
    """

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        limit: int | None = None,
        *,
        inflight: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit
        # True for the backend's in-flight limit: the caller's budget learns and retries. A plain
        # rate limit was already retried by the backend and is not tried again.
        self.inflight = inflight


class RemixUnavailable(RemixError):
    """5xx, connection refused, malformed reply: the request failed; treated as not delivered."""


class RemixOutcomeUnknown(RemixError):
    """Timed out after sending: the backend may have run and billed it; never resubmitted blindly."""

    may_have_run = True


class DownloadError(RemixError):
    """A result image could not be fetched safely (refused host, too large, expired, timed out)."""

    may_have_run = True

"""Store errors: quota refusals with the numbers a user needs, and a busy database."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bot.errors import QuotaRefused, RemixbotError
from bot.store.periods import PERIOD_WORDS

if TYPE_CHECKING:
    from bot.store.models import QuotaStatus


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


class QuotaExceeded(QuotaRefused):
    """Not enough images left in the period; `str()` is the plain-text sentence."""

    def __init__(
        self, *, remaining: int, limit: int, needed: int, period: str, resets_at: datetime
    ) -> None:
        self.remaining = remaining
        self.limit = limit
        self.needed = needed
        self.period = period
        self.resets_at = resets_at
        super().__init__(self.sentence(resets_at.strftime("at %Y-%m-%d %H:%M UTC")))

    @classmethod
    def from_status(cls, status: QuotaStatus, needed: int) -> QuotaExceeded:
        """The refusal for `needed` images given the user's quota report (limited, not exempt)."""
        assert status.limit is not None and status.remaining is not None
        return cls(
            remaining=status.remaining,
            limit=status.limit + status.granted,
            needed=needed,
            period=status.period,
            resets_at=status.resets_at,
        )

    def sentence(self, when: str) -> str:
        """The refusal with `when` (the reset time, as the surface shows times) filled in."""
        word = PERIOD_WORDS.get(self.period, "this period")
        if self.limit == 0:  # a reset would not help: say it is switched off, and who can change it
            return (
                f"Remixing is switched off for you here (a limit of 0 images {word}); "
                "a server admin can change that."
            )
        return (
            f"You have {self.remaining} of {_images(self.limit)} left {word}; "
            f"this needs {self.needed}. Your quota resets {when}."
        )


class UserBlocked(QuotaRefused):
    """The user is blocked from remixing; `reason` is what the admin wrote."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.remaining = 0
        self.limit = 0
        self.resets_at = None
        super().__init__(f"You are blocked from remixing: {reason.rstrip('.')}.")


class StoreBusy(RemixbotError):
    """Another process held the database's write lock past the busy timeout; nothing changed."""

    exit_code = 1

    def __init__(self) -> None:
        super().__init__(
            "The job database is busy; nothing was changed, try again in a few seconds."
        )


class StoreUnavailable(RemixbotError):
    """The PostgreSQL server could not be reached (or refused the login); nothing changed."""

    exit_code = 1

    def __init__(self, where: str, why: str) -> None:
        super().__init__(
            f"Could not reach the job database at {where} ({why}); check REMIXBOT_DATABASE_URL"
            " and that the server is running."
        )


class BooksMissing(RemixbotError):
    """Opened to read or change existing books, the store found none there; nothing was made.

    `where` is the SQLite file (a full path) or the PostgreSQL URL without its password; `hint`
    says which setting points there (`Store.from_settings` fills it in).
    """

    exit_code = 2

    def __init__(self, where: str, hint: str = "") -> None:
        self.where = where
        self.hint = hint
        fix = f"{hint}, or run" if hint else "run"
        super().__init__(
            f"There are no books at {where}; {fix} remixbot db init to start new books there."
        )


def is_busy(exc: BaseException) -> bool:
    """True when SQLite gave up waiting for another connection's lock (busy timeout)."""
    text = str(exc)
    return "locked" in text or "busy" in text


class JobNotFound(RemixbotError):
    """No job has the given id."""

    exit_code = 2

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"There is no job {job_id}.")

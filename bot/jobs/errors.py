"""Errors of the job scheduler: each is one sentence a member can act on."""

from __future__ import annotations

from bot.errors import RemixbotError


class AdmissionRefused(RemixbotError):
    """The scheduler refused a job before anything was charged (full, over a cap, or closing)."""

    exit_code = 4


class QueueFull(AdmissionRefused):
    """The global queue bound is reached."""

    def __init__(self, message: str = "The remix queue is full; try again in a minute.") -> None:
        super().__init__(message)


class QueueTooLong(AdmissionRefused):
    """A new job would wait longer than the bot admits (REMIXBOT_MAX_WAIT)."""

    def __init__(self, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        minutes = max(1, round(wait_seconds / 60))
        super().__init__(
            f"About {minutes} minute{'s' if minutes != 1 else ''} of remixes are waiting; "
            "try again later."
        )


class UserQueueFull(AdmissionRefused):
    """The member already has their cap of jobs waiting."""

    def __init__(self, cap: int) -> None:
        noun = "remix" if cap == 1 else "remixes"
        super().__init__(f"You already have {cap} {noun} waiting; wait for one to finish.")
        self.cap = cap


class SchedulerClosed(AdmissionRefused):
    """The scheduler stopped taking work (the bot is shutting down or restarting)."""

    def __init__(
        self, message: str = "The bot is restarting and not taking remixes; try again in a minute."
    ) -> None:
        super().__init__(message)


class JobNotStarted(RemixbotError):
    """The job never reached the backend (cancelled while queued, or handed back at a stop)."""

    def __init__(self, message: str = "That remix was not started; nothing was charged.") -> None:
        super().__init__(message)


class JobRunning(RemixbotError):
    """A running job cannot be cancelled: its backend call may already be billed."""

    def __init__(
        self,
        message: str = "That remix is already generating and cannot be cancelled; "
        "it will finish shortly.",
    ) -> None:
        super().__init__(message)


class NotJobOwner(RemixbotError):
    """Only the member who asked for a job (or an admin) may cancel it."""

    def __init__(
        self, message: str = "Only the member who asked for that remix can cancel it."
    ) -> None:
        super().__init__(message)

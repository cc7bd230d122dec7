"""The job scheduler: fair per-user queue, caps, in-flight image budget, positions and ETAs."""

from bot.jobs.errors import (
    AdmissionRefused,
    JobNotStarted,
    JobRunning,
    NotJobOwner,
    QueueFull,
    QueueTooLong,
    SchedulerClosed,
    UserQueueFull,
)
from bot.jobs.scheduler import AdmissionHold, DrainResult, Scheduler, SchedulerStats
from bot.jobs.ticket import MAX_IMAGES, Admission, JobState, JobTicket, Progress

__all__ = [
    "MAX_IMAGES",
    "Admission",
    "AdmissionHold",
    "AdmissionRefused",
    "DrainResult",
    "JobNotStarted",
    "JobRunning",
    "JobState",
    "JobTicket",
    "NotJobOwner",
    "Progress",
    "QueueFull",
    "QueueTooLong",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerStats",
    "UserQueueFull",
]

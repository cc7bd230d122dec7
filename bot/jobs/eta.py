"""Duration estimates and queue-time simulation for positions and ETAs."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass


class DurationModel:
    """Exponential moving average of how long a job runs, seeded with a prior.

    One figure per job, not per image: a backend generates a request's images together, so an
    8-image job takes only somewhat longer than a 1-image job, and a per-image rate would predict
    8-image jobs as eight times as long.
    """

    def __init__(
        self, prior_seconds: float = 15.0, alpha: float = 0.3, cap: float = 3600.0
    ) -> None:
        if prior_seconds <= 0:
            raise ValueError("prior_seconds must be positive")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self._seconds = float(prior_seconds)
        self._alpha = alpha
        self._cap = cap
        self.samples = 0

    @property
    def seconds(self) -> float:
        """The current estimate of one job's duration, in seconds."""
        return self._seconds

    def observe(self, seconds: float) -> None:
        """Fold one finished job's duration into the average (clamped to a sane range)."""
        value = min(max(seconds, 0.0), self._cap)
        self._seconds += self._alpha * (value - self._seconds)
        self.samples += 1


@dataclass(frozen=True)
class Estimate:
    """When a job is expected to start and to finish, in seconds from now."""

    wait_seconds: float
    eta_seconds: float


def simulate(
    capacity: int,
    running: Sequence[tuple[int, float]],
    queued: Sequence[int],
    job_seconds: float,
    overdue_fraction: float = 0.2,
    not_before: float = 0.0,
) -> tuple[list[Estimate], list[Estimate]]:
    """Play the scheduler's rule forward with every job lasting ``job_seconds``.

    ``running`` holds (cost, elapsed seconds) per running job; ``queued`` the costs in fair order.
    The rule is the scheduler's: jobs start strictly in fair order, each when its cost fits in the
    free budget. A running job past its expected duration is given ``overdue_fraction`` of it more.
    No queued job starts before ``not_before`` seconds (a pause after a backend 429).
    Returns the estimates for running jobs and for queued jobs, in the order given.
    """
    free = capacity
    finishing: list[tuple[float, int]] = []  # (finish time from now, cost)
    running_out: list[Estimate] = []
    for cost, elapsed in running:
        remaining = max(job_seconds - elapsed, job_seconds * overdue_fraction)
        heapq.heappush(finishing, (remaining, cost))
        free -= cost
        running_out.append(Estimate(0.0, remaining))
    now = max(not_before, 0.0)
    queued_out: list[Estimate] = []
    for cost in queued:
        cost = min(cost, capacity)
        while free < cost and finishing:
            at, freed = heapq.heappop(finishing)
            now = max(now, at)
            free += freed
        finish = now + job_seconds
        heapq.heappush(finishing, (finish, cost))
        free -= cost
        queued_out.append(Estimate(now, finish))
    return running_out, queued_out

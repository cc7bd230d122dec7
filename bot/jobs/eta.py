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


class Playout:
    """The scheduler's rule played forward, one queued job at a time, every job lasting
    ``job_seconds``: jobs start strictly in the order placed, each when its cost fits in the
    free budget. A running job past its expected duration is given ``overdue_fraction`` of it
    more. No queued job starts before ``not_before`` seconds (a pause after a backend 429).

    ``copy`` lets the state after a long queue be kept and played on from (a new job's wait),
    without playing the queue again.
    """

    __slots__ = ("capacity", "finishing", "free", "job_seconds", "now", "running")

    def __init__(
        self,
        capacity: int,
        running: Sequence[tuple[int, float]],
        job_seconds: float,
        overdue_fraction: float = 0.2,
        not_before: float = 0.0,
    ) -> None:
        self.capacity = capacity
        self.job_seconds = job_seconds
        self.free = capacity
        self.finishing: list[tuple[float, int]] = []  # (finish time from now, cost)
        self.running: list[Estimate] = []
        for cost, elapsed in running:
            remaining = max(job_seconds - elapsed, job_seconds * overdue_fraction)
            heapq.heappush(self.finishing, (remaining, cost))
            self.free -= cost
            self.running.append(Estimate(0.0, remaining))
        self.now = max(not_before, 0.0)

    def place(self, cost: int) -> tuple[float, float]:
        """Queue one more job of `cost` images; (wait, finish) in seconds from now."""
        cost = min(cost, self.capacity)
        finishing = self.finishing
        while self.free < cost and finishing:
            at, freed = heapq.heappop(finishing)
            if at > self.now:
                self.now = at
            self.free += freed
        finish = self.now + self.job_seconds
        heapq.heappush(finishing, (finish, cost))
        self.free -= cost
        return self.now, finish

    def copy(self) -> Playout:
        """The same state, to play on from without changing this one."""
        other = Playout.__new__(Playout)
        other.capacity, other.job_seconds = self.capacity, self.job_seconds
        other.free, other.now = self.free, self.now
        other.finishing, other.running = list(self.finishing), self.running
        return other


def simulate(
    capacity: int,
    running: Sequence[tuple[int, float]],
    queued: Sequence[int],
    job_seconds: float,
    overdue_fraction: float = 0.2,
    not_before: float = 0.0,
) -> tuple[list[Estimate], list[Estimate]]:
    """Play the scheduler's rule forward (see `Playout`) over the running jobs, (cost, elapsed
    seconds) each, and the queued jobs' costs in fair order; the estimates for both, in the
    order given."""
    play = Playout(capacity, running, job_seconds, overdue_fraction, not_before)
    return play.running, [Estimate(*play.place(cost)) for cost in queued]

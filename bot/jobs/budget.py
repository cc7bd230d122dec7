"""The in-flight budget: how many images may be at the backend at once, learnt from its 429s."""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)

# A run of 429s this long slows every job down, not just the one that got it.
STREAK_TO_SLOW_DOWN = 3
MAX_SLOWDOWN = 30.0
# At or above the level where the last 429 came, the budget tries one more image only after this
# many budgets' worth of accepted calls: a rare probe, not a sawtooth around the limit.
PROBE_AFTER_BUDGETS = 20


class InflightBudget:
    """Starts at the configured maximum; an in-flight 429 lowers it to what the backend says (or
    halves it), and it climbs back by one image after a budget's worth of accepted calls, never
    above the maximum (additive increase, multiplicative decrease).

    It remembers the level where the last 429 came (`ceiling`): below it the budget climbs back at
    once, one image per budget's worth of accepted calls; at the level just under it, it stays, and
    probes one image more only rarely (PROBE_AFTER_BUDGETS). A backend that allows 6 then runs at
    6, not in a sawtooth between 3 and 7.

    Jobs that were already at the backend when the budget was lowered answer with 429s of the same
    congestion; they are counted in the streak but do not lower it again.
    """

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError("the in-flight budget must be at least 1")
        self.maximum = maximum
        self.value = maximum
        self.streak = 0  # 429s in a row, with no accepted call between
        self.ceiling = maximum + 1  # the budget at which the last 429 came
        self._accepted = 0
        self._lowered_at = -math.inf

    def limited(self, sent_at: float, now: float, limit: int | None = None) -> bool:
        """Record an in-flight 429 for a call sent at `sent_at`; True if the budget went down."""
        self.streak += 1
        self._accepted = 0
        if sent_at < self._lowered_at:
            return False  # the same congestion as the last decrease
        target = min(limit, self.value) if limit and limit > 0 else self.value // 2
        new = max(1, min(target, self.maximum))
        self._lowered_at = now
        self.ceiling = max(self.value, new + 1) if not limit else limit + 1
        if new >= self.value:
            return False
        log.info("in-flight budget lowered from %d to %d images after a 429", self.value, new)
        self.value = new
        return True

    def accepted(self) -> bool:
        """Record a call the backend accepted; True if the budget went up."""
        self.streak = 0
        if self.value >= self.maximum:
            return False
        self._accepted += 1
        needed = self.value
        if self.value + 1 >= self.ceiling:  # the next image is where the backend refused
            needed = self.value * PROBE_AFTER_BUDGETS
        if self._accepted < needed:
            return False
        self._accepted = 0
        self.value += 1
        log.info("in-flight budget raised to %d images", self.value)
        return True

    def slowdown(self) -> float:
        """Seconds every job should wait after a run of 429s (0 until the streak is long)."""
        if self.streak < STREAK_TO_SLOW_DOWN:
            return 0.0
        return min(2.0 ** (self.streak - STREAK_TO_SLOW_DOWN), MAX_SLOWDOWN)

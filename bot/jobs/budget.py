"""The in-flight budget: how many images may be at the backend at once, learnt from its 429s."""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)

# A run of 429s this long slows every job down, not just the one that got it.
STREAK_TO_SLOW_DOWN = 3
MAX_SLOWDOWN = 30.0


class InflightBudget:
    """Starts at the configured maximum; an in-flight 429 lowers it to what the backend says (or
    halves it), and it climbs back by one image after a budget's worth of accepted calls, never
    above the maximum (additive increase, multiplicative decrease).

    Jobs that were already at the backend when the budget was lowered answer with 429s of the same
    congestion; they are counted in the streak but do not lower it again.
    """

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError("the in-flight budget must be at least 1")
        self.maximum = maximum
        self.value = maximum
        self.streak = 0  # 429s in a row, with no accepted call between
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
        if self._accepted < self.value:
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

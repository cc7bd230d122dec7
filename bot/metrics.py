"""What the domain counts as it works, through a small interface: the job's exits, images, quota
refusals, backend calls, Discord's 429s and acknowledgements.

The domain calls a `Metrics`; it never imports a metrics library. `NULL_METRICS` counts nothing
(the terminal, tests); bot/web/prom.py is the Prometheus implementation `remixbot run` uses when
the HTTP endpoint is on. Labels are bounded sets chosen here (an exit, an error's class name):
never a user id, a prompt or a secret.
"""

from __future__ import annotations

from typing import Protocol


class Metrics(Protocol):
    """The counters the domain and the Discord side report to."""

    def job_ended(self, exit: str) -> None:
        """A job left the lifecycle through `exit` (an `Exit` value)."""

    def images(self, *, generated: int = 0, posted: int = 0, withheld: int = 0) -> None:
        """Images the backend made (billed), posted to members, withheld by its safety filter."""

    def quota_refused(self) -> None:
        """A remix was refused for the member's quota or a block."""

    def backend_call(self, seconds: float, error: str | None = None) -> None:
        """One backend call took `seconds`; `error` is the failure's kind (class name) if any."""

    def discord_429(self) -> None:
        """Discord's REST API answered 429."""

    def acknowledged(self, seconds: float) -> None:
        """An interaction was acknowledged `seconds` after it arrived."""


class NullMetrics(Metrics):
    """Counts nothing: where no endpoint reads the numbers (each method is the protocol's own
    empty body)."""


NULL_METRICS: Metrics = NullMetrics()

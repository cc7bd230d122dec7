"""`PrometheusMetrics`: the `Metrics` the domain counts into, plus the gauges read at scrape
time (queue, in-flight budget, event-loop lag), as Prometheus text through prometheus-client.

Its own registry, not the library's global one: two bots in one test process never share
counters, and nothing but ours (no process or GC collectors' surprises) is exposed. Labels are
bounded: an exit name, an error's class name. No user id, prompt or secret ever becomes a label.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.jobs import Scheduler
from bot.lifecycle import Exit
from bot.looplag import LoopLag

CONTENT_TYPE = CONTENT_TYPE_LATEST
BACKEND_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 180, 300, 600)
ACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 5)


class PrometheusMetrics:
    """Counters and histograms the domain reports to; gauges wired to live objects by `watch`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Counter(
            "remixbot_jobs",
            "Jobs by how they left the lifecycle (docs/architecture.md).",
            ["exit"],
            registry=r,
        )
        for exit_ in Exit:  # every exit shows, at 0 until it happens
            self.jobs.labels(exit=exit_.value)
        self.generated = Counter(
            "remixbot_images_generated", "Images the backend made (and billed).", registry=r
        )
        self.posted = Counter("remixbot_images_posted", "Images posted to members.", registry=r)
        self.withheld = Counter(
            "remixbot_images_withheld",
            "Images withheld by the backend's safety filter.",
            registry=r,
        )
        self.refusals = Counter(
            "remixbot_quota_refusals", "Remixes refused for a quota or a block.", registry=r
        )
        self.backend_seconds = Histogram(
            "remixbot_backend_seconds",
            "Duration of one backend call.",
            buckets=BACKEND_BUCKETS,
            registry=r,
        )
        self.backend_errors = Counter(
            "remixbot_backend_errors",
            "Backend calls that failed, by kind of error.",
            ["kind"],
            registry=r,
        )
        self.rest_429 = Counter(
            "remixbot_discord_rest_429", "Discord REST answers with status 429.", registry=r
        )
        self.ack_seconds = Histogram(
            "remixbot_ack_seconds",
            "From an interaction's arrival to Discord accepting its acknowledgement.",
            buckets=ACK_BUCKETS,
            registry=r,
        )

    # --- Metrics ---------------------------------------------------------------------------

    def job_ended(self, exit: str) -> None:
        """Count one exit."""
        self.jobs.labels(exit=str(exit)).inc()

    def images(self, *, generated: int = 0, posted: int = 0, withheld: int = 0) -> None:
        """Count images made, posted and withheld."""
        for counter, n in (
            (self.generated, generated),
            (self.posted, posted),
            (self.withheld, withheld),
        ):
            if n > 0:
                counter.inc(n)

    def quota_refused(self) -> None:
        """Count one refusal."""
        self.refusals.inc()

    def backend_call(self, seconds: float, error: str | None = None) -> None:
        """Observe one call's duration, and its error's kind."""
        self.backend_seconds.observe(max(seconds, 0.0))
        if error is not None:
            self.backend_errors.labels(kind=error).inc()

    def discord_429(self) -> None:
        """Count one 429 from Discord's REST API."""
        self.rest_429.inc()

    def acknowledged(self, seconds: float) -> None:
        """Observe one acknowledgement's latency."""
        self.ack_seconds.observe(max(seconds, 0.0))

    # --- gauges read at scrape time ----------------------------------------------------------

    def watch(self, scheduler: Scheduler, lag: LoopLag | None = None) -> None:
        """Expose the scheduler's queue and budget, and the loop's lag, as gauges."""
        r = self.registry

        def gauge(name: str, doc: str, read: Callable[[], float]) -> None:
            Gauge(name, doc, registry=r).set_function(read)

        gauge("remixbot_queue_jobs", "Jobs waiting in the queue.", lambda: len(scheduler.queued()))
        gauge("remixbot_running_jobs", "Jobs running now.", lambda: len(scheduler.running()))
        gauge(
            "remixbot_queue_estimated_wait_seconds",
            "Estimated wait before a new one-image job starts.",
            lambda: scheduler.estimated_wait(1),
        )
        gauge(
            "remixbot_inflight_budget_images",
            "Images the scheduler lets be in flight at the backend (learned from its 429s).",
            lambda: scheduler.budget.value,
        )
        gauge(
            "remixbot_inflight_images",
            "Images in flight at the backend now.",
            lambda: scheduler.inflight,
        )
        if lag is not None:
            gauge(
                "remixbot_event_loop_lag_seconds",
                "How late the event loop ran its last timer.",
                lambda: lag.last,
            )
            gauge(
                "remixbot_event_loop_lag_max_seconds",
                "The event loop's longest stall since start.",
                lambda: lag.longest,
            )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

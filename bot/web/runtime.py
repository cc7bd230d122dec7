"""What `remixbot run` adds when REMIXBOT_HTTP_PORT is set: the Prometheus metrics the services
count into, the Discord watch, and the endpoint (health, metrics, dashboard) around the bot."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import SettingsError
from bot.looplag import LoopLag
from bot.metrics import NULL_METRICS, Metrics
from bot.secrets import register_secret
from bot.settings import Settings
from bot.store.files import write_atomic
from bot.web.auth import PASSWORD_FILE
from bot.web.discordwatch import DiscordWatch
from bot.web.prom import PrometheusMetrics
from bot.web.server import Endpoint, Probe, make_app

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger("remixbot.web")

MIN_PASSWORD = 16  # shorter content (an emptied file) is replaced by a new password

DB_PROBE_JOB = (
    0  # no job has id 0: the read goes through the writer thread and SQLite, finds nothing
)


def database_probe(services: Services) -> Probe:
    """Healthy while the store answers a read."""

    async def probe() -> str | None:
        try:
            await services.store.find_job(DB_PROBE_JOB)
        except Exception as exc:
            return f"the database does not answer ({type(exc).__name__})"
        return None

    return probe


def admin_token(settings: Settings) -> str:
    """REMIXBOT_ADMIN_TOKEN, else the password kept in the data folder (made at the first start,
    readable only by its owner); the log says only where it is."""
    if settings.admin_token:
        return settings.admin_token.get()
    path = settings.data_dir / PASSWORD_FILE
    try:
        token = _kept_password(path)
    except OSError as exc:
        raise SettingsError(
            f"Cannot read or write the dashboard password file {path} "
            f"({exc.strerror or type(exc).__name__}); give the bot's user that file, delete it "
            "for a new one, or set REMIXBOT_ADMIN_TOKEN."
        ) from None
    register_secret(token)  # if it ever reaches a log line, it is redacted there
    # Where, never what: the log goes to journald, Docker and log collectors.
    log.info(
        "admin dashboard password: in %s (set REMIXBOT_ADMIN_TOKEN to choose one)", path.resolve()
    )
    return token


def _kept_password(path: Path) -> str:
    """The password in `path` (its mode tightened to 0600), or a new one written there."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if len(token) >= MIN_PASSWORD:
        os.chmod(path, 0o600)
        return token
    token = secrets.token_urlsafe(24)
    write_atomic(path, f"{token}\n".encode(), mode=0o600)
    return token


class Operations:
    """The endpoint's parts for one run of the bot; `NULL` when the endpoint is off."""

    def __init__(self, settings: Settings, *, enabled: bool) -> None:
        self.settings = settings
        self.enabled = enabled
        self.prometheus = PrometheusMetrics() if enabled else None
        self.metrics: Metrics = self.prometheus or NULL_METRICS
        self.watch = DiscordWatch(self.metrics) if enabled else None
        self.endpoint: Endpoint | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Operations:
        """On when REMIXBOT_HTTP_PORT is set."""
        return cls(settings, enabled=settings.http_port > 0)

    def bot_options(self) -> dict[str, Any]:
        """Options for the Discord client: the REST trace that counts 429s and acknowledgements."""
        return {"http_trace": self.watch.trace_config()} if self.watch else {}

    def listeners(self) -> list[tuple[Callable[..., Awaitable[None]], str]]:
        """(listener, event name) pairs for the Discord client."""
        return [(self.watch.on_interaction, "on_interaction")] if self.watch else []

    @contextlib.asynccontextmanager
    async def serving(
        self, services: Services, lag: LoopLag, gateway: Probe
    ) -> AsyncIterator[Endpoint | None]:
        """Serve /healthz, /metrics and /admin while the block runs (nothing when off)."""
        if self.prometheus is None:
            yield None
            return
        from bot.web.dashboard import add_dashboard  # only when the endpoint is on

        self.prometheus.watch(services.scheduler, lag)
        app = make_app(self.prometheus, [gateway, database_probe(services)])
        add_dashboard(app, self.settings, services, admin_token(self.settings))
        self.endpoint = Endpoint(self.settings, app)
        await self.endpoint.start()
        try:
            yield self.endpoint
        finally:
            await self.endpoint.stop()

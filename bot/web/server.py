"""The HTTP endpoint of `remixbot run`: /healthz, /metrics and (bot/web/dashboard.py) the admin
pages, on one aiohttp server bound to REMIXBOT_HTTP_HOST:REMIXBOT_HTTP_PORT (127.0.0.1 unless
told otherwise). Off unless the port is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.settings import Settings
from bot.web.prom import CONTENT_TYPE, PrometheusMetrics

log = logging.getLogger(__name__)

# A probe answers None when healthy, else one sentence saying what is wrong.
Probe = Callable[[], Awaitable[str | None]]
PROBE_TIMEOUT = 3.0


async def _healthz(request: web.Request) -> web.Response:
    probes: list[Probe] = request.app[PROBES]
    for probe in probes:
        try:
            reason = await asyncio.wait_for(probe(), PROBE_TIMEOUT)
        except TimeoutError:
            reason = "a health check did not answer within 3 seconds"
        except Exception as exc:  # the probe itself failed: unhealthy, and say how
            reason = f"a health check failed ({type(exc).__name__})"
        if reason is not None:
            return _json_line({"status": "unhealthy", "reason": reason}, 503)
    return _json_line({"status": "ok"}, 200)


def _json_line(body: dict[str, str], status: int) -> web.Response:
    """One line of JSON (a monitor's log shows it whole)."""
    return web.Response(
        text=json.dumps(body, separators=(",", ":")) + "\n",
        status=status,
        content_type="application/json",
    )


async def _metrics(request: web.Request) -> web.Response:
    metrics: PrometheusMetrics = request.app[METRICS]
    body = await asyncio.to_thread(metrics.render)  # the estimated wait runs a small simulation
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


PROBES = web.AppKey("probes", list)
METRICS = web.AppKey("metrics", PrometheusMetrics)


def make_app(metrics: PrometheusMetrics, probes: list[Probe]) -> web.Application:
    """The application with /healthz and /metrics (the dashboard adds its own routes)."""
    app = web.Application()
    app[PROBES] = probes
    app[METRICS] = metrics
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    return app


class Endpoint:
    """The running server: `start()` binds it, `stop()` closes it."""

    def __init__(
        self, settings: Settings, app: web.Application, *, port: int | None = None
    ) -> None:
        self.settings = settings
        self.app = app
        self._runner: web.AppRunner | None = None
        self.port = settings.http_port if port is None else port  # 0: any free port

    async def start(self) -> None:
        """Bind host:port and serve; the actual port is in `self.port` (0 in tests picks one)."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info(
            "HTTP endpoint on http://%s:%d (/healthz, /metrics, /admin)",
            self.settings.http_host,
            self.port,
        )

    @property
    def url(self) -> str:
        """The base URL clients use."""
        host = self.settings.http_host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

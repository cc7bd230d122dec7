"""The admin dashboard (in progress)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def add_dashboard(app: web.Application, settings: Any, services: Any, token: str) -> None:
    """Add the dashboard's routes to `app`."""

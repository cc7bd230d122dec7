"""What the dashboard's handlers read from the app and the request: the services, the settings
and the signed-in session's CSRF token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.settings import Settings
from bot.web.auth import SESSION

if TYPE_CHECKING:
    from bot.services import Services

SERVICES = web.AppKey("services", object)
SETTINGS = web.AppKey("settings", Settings)


def services_of(request: web.Request) -> Services:
    """The bot's services."""
    return request.app[SERVICES]  # type: ignore[return-value]


def csrf_of(request: web.Request) -> str:
    """The CSRF token of the signed-in session."""
    return request[SESSION].csrf

"""The dashboard's login: one admin token, server-side sessions, and CSRF checks on writes.

A session is a random id in an `HttpOnly`, `SameSite=Strict` cookie scoped to /admin; the server
keeps, per session, its expiry and its CSRF token. Every POST (except the login itself) must carry
that token in a form field, and a request whose Origin names another host is refused: a page on
another site can neither read the token nor have the browser send the cookie with its request.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.web.html import e, page

# The dashboard's password when REMIXBOT_ADMIN_TOKEN is unset, a file in the data folder (like
# Jenkins' initialAdminPassword): kept across restarts; delete it for a new one at the next start.
PASSWORD_FILE = "dashboard-password"

COOKIE = "remixbot_admin"
SESSION_SECONDS = 12 * 3600
FAILED_LOGIN_DELAY = 1.0  # slows guessing; one admin never notices
MAX_SESSIONS = 100

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Session:
    """One signed-in browser."""

    csrf: str
    expires: float


class Sessions:
    """Signed-in browsers, in memory (a restart signs everyone out)."""

    def __init__(self, token: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._token = token.encode()
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def login(self, given: str) -> str | None:
        """A new session id when `given` is the admin token, else None."""
        if not hmac.compare_digest(given.encode(), self._token):
            return None
        now = self._clock()
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = Session(secrets.token_urlsafe(32), now + SESSION_SECONDS)
        return sid

    def get(self, sid: str | None) -> Session | None:
        """The live session of this id, or None."""
        session = self._sessions.get(sid or "")
        if session is None or session.expires <= self._clock():
            return None
        return session

    def logout(self, sid: str | None) -> None:
        """Forget a session."""
        self._sessions.pop(sid or "", None)


SESSIONS = web.AppKey("sessions", Sessions)
# The request's key for the current Session (aiohttp 3.12+ has typed request keys).
SESSION: Any = (
    web.RequestKey("admin_session", Session) if hasattr(web, "RequestKey") else "admin_session"
)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


@web.middleware
async def require_login(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pages under /admin need a session; their POSTs need its CSRF token and our origin."""
    if not request.path.startswith("/admin") or request.path == "/admin/login":
        return await handler(request)
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
    if session is None:
        if request.method == "GET":
            raise web.HTTPSeeOther("/admin/login")
        raise web.HTTPForbidden(text="Sign in first.")
    if request.method == "POST":
        form = await request.post()
        given = str(form.get("csrf", ""))
        if not _same_origin(request) or not hmac.compare_digest(given, session.csrf):
            raise web.HTTPForbidden(
                text="This form is stale or came from another site; reload the page."
            )
    request[SESSION] = session
    return await handler(request)


async def login_page(request: web.Request) -> web.StreamResponse:
    """GET shows the form; POST checks the token and starts a session."""
    error = ""
    if request.method == "POST":
        if not _same_origin(request):
            raise web.HTTPForbidden(text="The login form came from another site.")
        form = await request.post()
        sid = request.app[SESSIONS].login(str(form.get("token", "")))
        if sid is not None:
            response = web.HTTPSeeOther("/admin")
            response.set_cookie(
                COOKIE,
                sid,
                max_age=SESSION_SECONDS,
                path="/admin",
                httponly=True,
                samesite="Strict",
                secure=request.secure,
            )
            raise response
        await asyncio.sleep(FAILED_LOGIN_DELAY)
        error = "<p class=err role=alert>That is not the admin token.</p>"
    body = (
        f"{error}<form method=post action=/admin/login><p><label>Admin token "
        "<input type=password name=token autocomplete=current-password required autofocus>"
        "</label> <button>Sign in</button></p></form><p class=note>The token is "
        "REMIXBOT_ADMIN_TOKEN, or, when that is unset, the content of the file "
        f"{e(PASSWORD_FILE)} in the bot's data folder.</p>"
    )
    return page("Sign in", body)


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session."""
    request.app[SESSIONS].logout(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/admin/login")
    response.del_cookie(COOKIE, path="/admin")
    raise response

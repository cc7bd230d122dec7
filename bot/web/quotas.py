"""The dashboard's quota and block page: every stored policy, and forms that change them through
the same Store calls as `remixbot quota` (set-default, set-guild, set-role, exempt, grant, reset,
block, unblock). Each form carries the session's CSRF token (checked in bot/web/auth.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from bot.store import Store
from bot.store.admin import (
    block_where,
    blocked_text,
    parse_snowflake,
    parse_user_id,
    unblocked_text,
    user_label,
    when,
)
from bot.store.periods import PERIODS
from bot.web.context import csrf_of, services_of
from bot.web.html import csrf_field, e, message, page, table

MAX_REASON = 300


class Refused(ValueError):
    """A form value that cannot be used; its text is the one sentence shown."""


def _field(form: MultiDictProxy[Any], name: str) -> str:
    return str(form.get(name, "")).strip()


def _images(form: MultiDictProxy[Any], name: str = "limit", *, none_ok: bool = False) -> int | None:
    text = _field(form, name)
    if none_ok and text.lower() in ("", "none"):
        return None
    if text.isdigit() and int(text) <= 1_000_000:
        return int(text)
    extra = " or none" if none_ok else ""
    raise Refused(
        f"{name} must be a whole number of images from 0 to 1000000{extra}, not {text!r}."
    )


def _snowflake(form: MultiDictProxy[Any], name: str, *, optional: bool = False) -> int | None:
    text = _field(form, name)
    if optional and not text:
        return None
    try:
        return parse_snowflake(text, name)
    except ValueError as exc:
        raise Refused(str(exc)) from None


def _user(form: MultiDictProxy[Any]) -> int:
    try:
        return parse_user_id(_field(form, "user"))
    except ValueError as exc:
        raise Refused(str(exc)) from None


def _where(guild: int | None) -> str:
    return "in direct messages" if guild is None else f"in server {guild}"


Action = Callable[[Store, MultiDictProxy[Any]], Awaitable[str]]


async def _set_default(store: Store, form: MultiDictProxy[Any]) -> str:
    limit = _images(form)
    period = _field(form, "period") or None
    if period is not None and period not in PERIODS:
        raise Refused(f"period must be one of {', '.join(PERIODS)}, not {period!r}.")
    p = await store.set_default(limit or 0, period)
    return f"Default quota: {p.default_limit} images per user, {p.period}."


async def _set_guild(store: Store, form: MultiDictProxy[Any]) -> str:
    guild, limit = _snowflake(form, "guild"), _images(form, none_ok=True)
    assert guild is not None
    await store.set_guild(guild, limit)
    if limit is None:
        return f"Guild {guild} uses the default limit."
    return f"Guild {guild}: {limit} images per user, in place of the default."


async def _set_role(store: Store, form: MultiDictProxy[Any]) -> str:
    guild, role = _snowflake(form, "guild"), _snowflake(form, "role")
    limit = _images(form, none_ok=True)
    assert guild is not None and role is not None
    await store.set_role(guild, role, limit)
    if limit is None:
        return f"Role {role} in guild {guild} has no tier."
    return f"Role {role} in guild {guild}: {limit} images per user."


async def _exempt(store: Store, form: MultiDictProxy[Any]) -> str:
    guild, role = _snowflake(form, "guild"), _snowflake(form, "role")
    exempt = _field(form, "exempt") != "off"
    assert guild is not None and role is not None
    await store.set_exempt_role(guild, role, exempt)
    return f"Role {role} in guild {guild} is {'unlimited' if exempt else 'not exempt'}."


async def _grant(store: Store, form: MultiDictProxy[Any]) -> str:
    user, guild = _user(form), _snowflake(form, "guild", optional=True)
    n = _images(form, "images")
    if not n:
        raise Refused("images must be a whole number of at least 1.")
    await store.grant(user, guild, n)
    return f"Granted {n} extra images to {user_label(user)} for this period, {_where(guild)}."


async def _reset(store: Store, form: MultiDictProxy[Any]) -> str:
    user, guild = _user(form), _snowflake(form, "guild", optional=True)
    await store.reset(user, guild)
    return f"Reset this period's charges of {user_label(user)}, {_where(guild)}."


async def _block(store: Store, form: MultiDictProxy[Any]) -> str:
    user, reason = _user(form), _field(form, "reason")
    guild = _snowflake(form, "guild", optional=True)
    if not reason or len(reason) > MAX_REASON:
        raise Refused(f"A block needs a reason of 1 to {MAX_REASON} characters (members see it).")
    await store.block(user, reason, guild_id=guild)
    return blocked_text(user, guild, reason)


async def _unblock(store: Store, form: MultiDictProxy[Any]) -> str:
    user, guild = _user(form), _snowflake(form, "guild", optional=True)
    return unblocked_text(user, guild, await store.unblock(user, guild_id=guild))


ACTIONS: dict[str, Action] = {
    "set-default": _set_default,
    "set-guild": _set_guild,
    "set-role": _set_role,
    "exempt": _exempt,
    "grant": _grant,
    "reset": _reset,
    "block": _block,
    "unblock": _unblock,
}


def add_routes(app: web.Application) -> None:
    """GET shows the policies and forms; POST applies one form."""
    app.router.add_get("/admin/quotas", quotas_page)
    app.router.add_post("/admin/quotas", quotas_change)


async def quotas_change(request: web.Request) -> web.StreamResponse:
    """Apply one action; show the page with its result (or why it was refused)."""
    form = await request.post()
    action = ACTIONS.get(_field(form, "action"))
    if action is None:
        return await _render(
            request, "That is not an action this page knows.", error=True, status=400
        )
    try:
        done = await action(services_of(request).store, form)
    except Refused as exc:
        return await _render(request, str(exc), error=True, status=400)
    return await _render(request, done)


async def quotas_page(request: web.Request) -> web.StreamResponse:
    """Every stored policy, and the forms."""
    return await _render(request, None)


def _form(csrf: str, action: str, legend: str, fields: str, button: str) -> str:
    return (
        f"<form method=post action=/admin/quotas><fieldset><legend>{e(legend)}</legend>"
        f"{csrf_field(csrf)}<input type=hidden name=action value={action}>{fields} "
        f"<button>{e(button)}</button></fieldset></form>"
    )


def _input(name: str, label: str, *, size: int = 20, required: bool = True, value: str = "") -> str:
    req = " required" if required else ""
    return f'<label>{e(label)} <input name={name} size={size} value="{e(value)}"{req}></label> '


async def _render(
    request: web.Request, note: str | None, *, error: bool = False, status: int = 200
) -> web.StreamResponse:
    p = await services_of(request).store.policies()
    csrf = csrf_of(request)
    rows: list[tuple[Any, ...]] = [("guild", g, "—", n) for g, n in sorted(p.guilds.items())]
    rows += [("role tier", g, r, n) for (g, r), n in sorted(p.roles.items())]
    rows += [("exempt role", g, r, "unlimited") for g, r in sorted(p.exempt_roles)]
    blocked = [
        (user_label(b.user_id), block_where(b), b.reason, when(b.blocked_at)) for b in p.blocks
    ]
    periods = "".join(
        f"<option{' selected' if x == p.period else ''}>{e(x)}</option>" for x in PERIODS
    )
    forms = "".join(
        (
            _form(
                csrf,
                "set-default",
                "Default limit",
                _input("limit", "Images per user", size=8, value=str(p.default_limit))
                + f"<label>Period <select name=period>{periods}</select></label>",
                "Set",
            ),
            _form(
                csrf,
                "set-guild",
                "A server's limit",
                _input("guild", "Guild id")
                + _input("limit", "Images per user (none: the default)", size=8),
                "Set",
            ),
            _form(
                csrf,
                "set-role",
                "A role tier",
                _input("guild", "Guild id")
                + _input("role", "Role id")
                + _input("limit", "Images per user (none: remove)", size=8),
                "Set",
            ),
            _form(
                csrf,
                "exempt",
                "An unlimited role",
                _input("guild", "Guild id")
                + _input("role", "Role id")
                + "<label>Exempt <select name=exempt><option value=on>on</option>"
                "<option value=off>off</option></select></label>",
                "Set",
            ),
            _form(
                csrf,
                "grant",
                "Extra images for this period",
                _input("user", "Member id")
                + _input("images", "Images", size=6)
                + _input("guild", "Guild id (empty: direct messages)", required=False),
                "Grant",
            ),
            _form(
                csrf,
                "reset",
                "Forgive this period's charges",
                _input("user", "Member id")
                + _input("guild", "Guild id (empty: direct messages)", required=False),
                "Reset",
            ),
            _form(
                csrf,
                "block",
                "Block a member",
                _input("user", "Member id")
                + _input("reason", "Reason (shown to them)", size=40)
                + _input("guild", "Guild id (empty: everywhere)", required=False),
                "Block",
            ),
            _form(
                csrf,
                "unblock",
                "Lift a block",
                _input("user", "Member id")
                + _input("guild", "Guild id (empty: the bot-wide block)", required=False),
                "Unblock",
            ),
        )
    )
    body = (
        message(note, error=error)
        + f"<p>Default: <b>{p.default_limit}</b> images per user, {e(p.period)}; periods start at "
        f"{p.reset_hour:02d}:00 UTC. A server's limit replaces the default there; a member's "
        "role tier above it raises them. A block holds in its server, or everywhere.</p>"
        + table(("policy", "guild", "role", "limit"), rows)
        + "<h2>Blocked</h2>"
        + table(("member", "where", "reason", "since"), blocked)
        + "<h2>Change</h2>"
        + forms
    )
    response = page("Quotas and blocks", body, path="/admin/quotas", csrf=csrf)
    response.set_status(status)
    return response

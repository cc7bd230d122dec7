"""Server-rendered HTML for the dashboard: the page frame, tables, forms; every value escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from aiohttp import web

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d1d28;background:#f6f6fa}
header{background:#2b2250;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}
header a{color:#fff;text-decoration:none}header a.on{text-decoration:underline}
header form{margin-left:auto}main{padding:1em 1.2em;max-width:72em}
table{border-collapse:collapse;background:#fff;margin:.5em 0 1.2em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#eeeef6}td.n{text-align:right;font-variant-numeric:tabular-nums}
form.inline{display:inline}fieldset{background:#fff;border:1px solid #ddd;margin:.6em 0}
.note{color:#555}.err{background:#fde8e8;border:1px solid #e0a0a0;padding:.5em}
.ok{background:#e6f6e6;border:1px solid #9c9;padding:.5em}img.input{max-width:320px}
"""

NAV = (
    ("/admin", "Queue"),
    ("/admin/jobs", "Jobs"),
    ("/admin/usage", "Usage"),
    ("/admin/quotas", "Quotas"),
)


def e(value: Any) -> str:
    """A value as escaped HTML text ('—' for None)."""
    return "—" if value is None else escape(str(value), quote=True)


def page(title: str, body: str, *, path: str = "", csrf: str | None = None) -> web.Response:
    """A whole page: header with navigation (and logout when signed in), then the body."""
    links = "".join(
        f'<a href="{href}"{" class=on" if href == path else ""}>{name}</a>' for href, name in NAV
    )
    logout = (
        f'<form method="post" action="/admin/logout">{csrf_field(csrf)}'
        "<button>Log out</button></form>"
        if csrf
        else ""
    )
    nav = f"<strong>Remixbot</strong>{links}{logout}" if csrf else "<strong>Remixbot</strong>"
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{e(title)} · Remixbot</title>"
        f"<style>{STYLE}</style></head><body><header>{nav}</header>"
        f"<main><h1>{e(title)}</h1>{body}</main></body></html>"
    )
    response = web.Response(text=html, content_type="text/html")
    # The pages show members' ids and prompts: never cached, never framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on our own
    # forms, which the CSRF check (rightly) refuses.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def csrf_field(token: str | None) -> str:
    """The hidden CSRF field every form carries."""
    return f'<input type=hidden name=csrf value="{e(token)}">' if token else ""


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, raw: Sequence[int] = ()) -> str:
    """A table; cells are escaped except the columns listed in `raw` (already HTML)."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = str(value) if i in raw else e(value)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cells.append(f"<td class=n>{text}</td>" if numeric else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        return "<p class=note>Nothing to show.</p>"
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def message(text: str | None, *, error: bool = False) -> str:
    """A one-sentence notice (the result of a change, or why it was refused)."""
    if not text:
        return ""
    return f'<p class="{"err" if error else "ok"}" role=status>{e(text)}</p>'

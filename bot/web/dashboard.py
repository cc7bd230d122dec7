"""The admin dashboard's read-only pages: the queue now, recent jobs (by guild, member, state),
one job with its input and results, and usage per guild over time as a chart. The quota and
block pages are in bot/web/quotas.py; the login in bot/web/auth.py."""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from bot.media import sniff_format
from bot.settings import Settings
from bot.store import JOB_STATES, Job
from bot.store.admin import parse_snowflake, parse_user_id, user_label
from bot.store.usage import UsageRow, totals_by
from bot.web import quotas
from bot.web.auth import SESSIONS, Sessions, login_page, logout, require_login
from bot.web.chart import bar_chart
from bot.web.context import SERVICES, SETTINGS, csrf_of, services_of
from bot.web.html import e, page, table

if TYPE_CHECKING:
    from bot.services import Services

JOBS_SHOWN = 100
USAGE_DAYS = (7, 30, 90, 365)


def add_dashboard(app: web.Application, settings: Settings, services: Services, token: str) -> None:
    """Add /admin and its pages to `app`, behind a login with `token`."""
    app[SERVICES] = services
    app[SETTINGS] = settings
    app[SESSIONS] = Sessions(token)
    app.middlewares.append(require_login)
    r = app.router
    r.add_route("*", "/admin/login", login_page)
    r.add_post("/admin/logout", logout)
    r.add_get("/admin", queue_page)
    r.add_get("/admin/jobs", jobs_page)
    r.add_get("/admin/jobs/{id:\\d+}", job_page)
    r.add_get("/admin/jobs/{id:\\d+}/input", job_input)
    r.add_get("/admin/jobs/{id:\\d+}/kept/{name}", job_kept_file)
    r.add_get("/admin/usage", usage_page)
    quotas.add_routes(app)


def _job_link(job_id: int) -> str:
    return f'<a href="/admin/jobs/{job_id}">{job_id}</a>'


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _prompt(job: Job, limit: int = 80) -> str:
    text = str(job.request.get("prompt", ""))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the queue -------------------------------------------------------------------------------


async def queue_page(request: web.Request) -> web.StreamResponse:
    """What runs and waits now, and the budget at the backend."""
    scheduler = services_of(request).scheduler
    now = time.monotonic()
    running = [
        (
            _job_link(int(a.job_id)),
            user_label(a.user_id),
            a.images,
            a.stage or "starting",
            f"{now - (a.started_at or now):.0f} s",
        )
        for a in scheduler.running()
    ]
    queued = [
        (
            a.position,
            _job_link(int(a.job_id)),
            user_label(a.user_id),
            a.images,
            f"{now - a.submitted_at:.0f} s",
            "—" if a.eta_seconds is None else f"{a.eta_seconds:.0f} s",
        )
        for a in scheduler.queued()
    ]
    wait = await asyncio.to_thread(scheduler.estimated_wait, 1)
    body = (
        f"<p>In flight at the backend: <b>{scheduler.inflight}</b> of a budget of "
        f"<b>{scheduler.budget.value}</b> images. A new one-image remix would start in about "
        f"<b>{wait:.0f} s</b>.</p>"
        f"<h2>Running ({len(running)})</h2>"
        + table(("job", "member", "images", "stage", "running for"), running, raw=(0,))
        + f"<h2>Queued ({len(queued)})</h2>"
        + table(
            ("position", "job", "member", "images", "waiting for", "starts in"), queued, raw=(1,)
        )
    )
    return page("Queue", body, path="/admin", csrf=csrf_of(request))


# --- jobs ------------------------------------------------------------------------------------


def _filters(request: web.Request) -> tuple[int | None, int | None, str | None, str]:
    """(guild, member, state) from the query, and a sentence for any that cannot be read."""
    q = request.query
    guild = member = None
    state = q.get("state") or None
    problems = []
    if q.get("guild"):
        try:
            guild = parse_snowflake(q["guild"], "guild")
        except ValueError as exc:
            problems.append(str(exc))
    if q.get("member"):
        try:
            member = parse_user_id(q["member"])
        except ValueError as exc:
            problems.append(str(exc))
    if state is not None and state not in JOB_STATES:
        problems.append(f"state must be one of {', '.join(JOB_STATES)}, not {state!r}.")
        state = None
    return guild, member, state, " ".join(problems)


async def jobs_page(request: web.Request) -> web.StreamResponse:
    """Recent jobs, newest first, filtered by guild, member and state."""
    guild, member, state, problem = _filters(request)
    jobs = await services_of(request).store.list_jobs(member, state, JOBS_SHOWN, guild_id=guild)
    q = request.query
    options = "".join(
        f"<option{' selected' if s == state else ''}>{e(s)}</option>" for s in ("", *JOB_STATES)
    )
    form = (
        "<form method=get action=/admin/jobs><fieldset><legend>Filter</legend>"
        f'<label>Guild <input name=guild value="{e(q.get("guild", ""))}" size=20></label> '
        f'<label>Member <input name=member value="{e(q.get("member", ""))}" size=20></label> '
        f"<label>State <select name=state>{options}</select></label> "
        "<button>Show</button></fieldset></form>"
    )
    rows = [
        (
            _job_link(j.id),
            _when(j.created_at),
            j.guild_id if j.guild_id is not None else "DM/cli",
            user_label(j.user_id),
            j.kind,
            j.state,
            j.images_delivered,
            j.images_requested,
            _prompt(j),
        )
        for j in jobs
    ]
    body = (
        (f"<p class=err role=alert>{e(problem)}</p>" if problem else "")
        + form
        + table(
            (
                "job",
                "accepted (UTC)",
                "guild",
                "member",
                "kind",
                "state",
                "delivered",
                "asked",
                "prompt",
            ),
            rows,
            raw=(0,),
        )
        + f"<p class=note>The newest {JOBS_SHOWN} that match.</p>"
    )
    return page("Jobs", body, path="/admin/jobs", csrf=csrf_of(request))


async def _job(request: web.Request) -> Job:
    job = await services_of(request).store.find_job(int(request.match_info["id"]))
    if job is None:
        raise web.HTTPNotFound(text="There is no job with that id.")
    return job


def _kept_dir(request: web.Request, job: Job) -> Path:
    return request.app[SETTINGS].data_dir / "undelivered" / f"job-{job.id}"


async def job_page(request: web.Request) -> web.StreamResponse:
    """One job: who, what was asked (the input image too), how it ended, where the results are."""
    job = await _job(request)
    store = services_of(request).store
    cost = await store.backend_cost(job.id)
    kept_dir = _kept_dir(request, job)
    kept = sorted(p.name for p in await asyncio.to_thread(_listing, kept_dir))
    details = [
        ("state", job.state),
        ("kind", job.kind + (f" of job {job.parent_job_id}" if job.parent_job_id else "")),
        ("guild", job.guild_id if job.guild_id is not None else "DM or terminal"),
        ("channel", job.channel_id),
        ("member", user_label(job.user_id)),
        ("backend", job.backend),
        ("accepted", _when(job.created_at)),
        ("started", _when(job.started_at)),
        ("finished", _when(job.finished_at)),
        ("images asked / reserved", f"{job.images_requested} / {job.images_reserved}"),
        ("images delivered / withheld", f"{job.images_delivered} / {job.images_withheld}"),
        (
            "backend bill",
            "open"
            if cost is None
            else (f"{cost[1]} images" if cost[0] == "billed" else "unknown (may have run)"),
        ),
        ("error", job.error),
    ]
    request_rows = [(k, v) for k, v in sorted(job.request.items())]
    if job.message_ids and job.guild_id and job.message_channel_id:
        links = " ".join(
            f'<a href="https://discord.com/channels/{job.guild_id}/{job.message_channel_id}/{m}">'
            f"message {m}</a>"
            for m in job.message_ids
        )
    else:
        links = e(", ".join(str(m) for m in job.message_ids) or "none posted")
    kept_html = (
        " ".join(f'<a href="/admin/jobs/{job.id}/kept/{e(name)}">{e(name)}</a>' for name in kept)
        or "none"
    )
    image = (
        f'<p><img class=input alt="the input image of job {job.id}" '
        f'src="/admin/jobs/{job.id}/input"></p>'
        if job.input_key
        else "<p class=note>No stored input (deleted after the retention period, or forgotten).</p>"
    )
    body = (
        table(("", ""), details)
        + "<h2>Input</h2>"
        + image
        + table(("option", "value"), request_rows)
        + f"<h2>Results</h2><p>Posted: {links}</p>"
        + f"<p>Kept, not posted (undelivered/): {kept_html}</p>"
    )
    return page(f"Job {job.id}", body, path="/admin/jobs", csrf=csrf_of(request))


def _listing(folder: Path) -> list[Path]:
    with contextlib.suppress(OSError):
        return [p for p in folder.iterdir() if p.is_file()]
    return []


def _image_response(data: bytes) -> web.Response:
    fmt = sniff_format(data)
    ctype = f"image/{fmt.lower()}" if fmt else "application/octet-stream"
    response = web.Response(body=data, content_type=ctype)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def job_input(request: web.Request) -> web.StreamResponse:
    """The job's stored (prepared) input image."""
    job = await _job(request)
    data = await services_of(request).store.inputs.get(job.input_key) if job.input_key else None
    if data is None:
        raise web.HTTPNotFound(text="The input image is no longer stored.")
    return _image_response(data)


async def job_kept_file(request: web.Request) -> web.StreamResponse:
    """A result kept under undelivered/ (paid for, not posted)."""
    job = await _job(request)
    name = request.match_info["name"]
    folder = _kept_dir(request, job)
    path = folder / name
    if "/" in name or name.startswith(".") or path.parent != folder:
        raise web.HTTPNotFound()
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError:
        raise web.HTTPNotFound(text="That file is no longer kept.") from None
    response = _image_response(data)
    if response.content_type == "application/octet-stream":
        response.content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return response


# --- usage -----------------------------------------------------------------------------------


def _days(since: date, until: date) -> list[str]:
    return [(since + timedelta(days=i)).isoformat() for i in range((until - since).days + 1)]


def usage_section(guild: int | None, rows: list[UsageRow], days: list[str]) -> str:
    """One guild's chart (images and bill per day) and its totals by member."""
    by_day = totals_by(rows, "day")
    images = [by_day[d].images if d in by_day else 0 for d in days]
    billed = [by_day[d].billed if d in by_day else 0 for d in days]
    name = "Direct messages and terminal" if guild is None else f"Guild {guild}"
    members = [
        (user_label(user), t.jobs, t.images, t.billed, t.unknown_cost)
        for user, t in sorted(totals_by(rows, "user_id").items(), key=lambda kv: -kv[1].images)
    ]
    total_images, total_billed = sum(images), sum(billed)
    return (
        f"<h2>{e(name)}</h2><p>{total_images} images delivered, {total_billed} billed by the "
        "backend.</p>"
        + bar_chart(days, images, billed, f"{name}: images per day")
        + table(("member", "jobs", "images", "billed", "jobs of unknown cost"), members)
    )


async def usage_page(request: web.Request) -> web.StreamResponse:
    """Per-guild usage over the last N days as charts."""
    try:
        span = int(request.query.get("days", "30"))
    except ValueError:
        span = 30
    span = span if span in USAGE_DAYS else 30
    guild_text = request.query.get("guild", "")
    guild = None
    problem = ""
    if guild_text:
        try:
            guild = parse_snowflake(guild_text, "guild")
        except ValueError as exc:
            problem = str(exc)
    until = datetime.now(UTC).date()
    since = until - timedelta(days=span - 1)
    rows = await services_of(request).store.usage(guild, since)
    days = _days(since, until)
    links = " · ".join(
        f'<a href="/admin/usage?days={n}{"&guild=" + e(guild_text) if guild_text else ""}">{n} days</a>'
        for n in USAGE_DAYS
    )
    sections = [
        usage_section(g, [r for r in rows if r.guild_id == g], days)
        for g in dict.fromkeys(
            r.guild_id for r in sorted(rows, key=lambda r: (r.guild_id is None, r.guild_id or 0))
        )
    ]
    body = (
        (f"<p class=err role=alert>{e(problem)}</p>" if problem else "")
        + f"<p>The last {span} days (UTC): {links}. Billed: images the backend charged the "
        "bot's key for, withheld ones included.</p>"
        + ("".join(sections) or "<p class=note>No finished jobs in this period.</p>")
    )
    return page("Usage", body, path="/admin/usage", csrf=csrf_of(request))

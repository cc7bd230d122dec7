"""Helpers for admin front ends (the CLI, later the admin cog): user ids and plain-text tables."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from bot.errors import InvalidRequest
from bot.settings import Settings
from bot.store.models import ANON_USER_ID, CLI_USER_ID, Block, Job, QuotaStatus, Unblocked
from bot.store.store import Store

T = TypeVar("T")

_MENTION = re.compile(r"^<@!?(\d+)>$")


def parse_user_id(text: str) -> int:
    """A Discord user id, a mention like <@123>, or the word `cli` (the terminal user, id 0)."""
    raw = str(text).strip()
    if raw.lower() == "cli":
        return CLI_USER_ID
    match = _MENTION.match(raw)
    if match:
        raw = match.group(1)
    if raw.isdigit() and len(raw) <= 20:
        return int(raw)
    raise InvalidRequest(
        f"A user must be a Discord user id (digits), a mention or the word cli, not {text!r}."
    )


def parse_snowflake(text: str, what: str) -> int:
    """A guild, role or channel id: digits only."""
    raw = str(text).strip()
    if raw.isdigit() and len(raw) <= 20:
        return int(raw)
    raise InvalidRequest(f"A {what} id must be digits, not {text!r}.")


def user_label(user_id: int) -> str:
    """How a user id is shown: `cli` for the terminal user, `forgotten` after `forget`."""
    if user_id == CLI_USER_ID:
        return "cli"
    return "forgotten" if user_id == ANON_USER_ID else str(user_id)


def when(dt: datetime | None) -> str:
    """A timestamp as `YYYY-MM-DD HH:MM UTC`, or a dash."""
    return "-" if dt is None else dt.strftime("%Y-%m-%d %H:%M UTC")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(isinstance(r[i], int) for r in rows) and rows for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def status_dict(s: QuotaStatus) -> dict[str, Any]:
    """A quota status as JSON-ready data."""
    return {
        "user_id": s.user_id,
        "guild_id": s.guild_id,
        "limit": s.limit,
        "granted": s.granted,
        "used": s.used,
        "reserved": s.reserved,
        "remaining": s.remaining,
        "period": s.period,
        "period_start": s.period_start.isoformat(),
        "resets_at": s.resets_at.isoformat(),
        "blocked_reason": s.blocked_reason,
        "blocked_everywhere": s.blocked_everywhere,
        "blocked_here": s.blocked_here,
        "exempt": s.exempt,
    }


def status_text(s: QuotaStatus) -> str:
    """A quota status for a terminal."""
    scope = "direct messages" if s.guild_id is None else f"guild {s.guild_id}"
    limit = "unlimited (exempt role)" if s.limit is None else str(s.limit)
    remaining = "unlimited" if s.remaining is None else str(s.remaining)
    rows = [
        ("limit", limit),
        ("granted", s.granted),
        ("used", s.used),
        ("reserved", s.reserved),
        ("remaining", remaining),
    ]
    rows += [("blocked", f"{reason} ({where})") for where, reason in _blocks_of(s)] or [
        ("blocked", "no")
    ]
    head = (
        f"User {user_label(s.user_id)} in {scope}: {s.period} quota, resets at {when(s.resets_at)}"
    )
    return head + "\n" + "\n".join(f"  {k:<10} {v}" for k, v in rows)


def _blocks_of(s: QuotaStatus) -> list[tuple[str, str]]:
    """(where, reason) of each block that refuses the user in the status's scope."""
    out = []
    if s.blocked_everywhere is not None:
        out.append(("everywhere, by the bot's owner", s.blocked_everywhere))
    if s.blocked_here is not None:
        out.append((f"in guild {s.guild_id}", s.blocked_here))
    return out


def block_where(b: Block) -> str:
    """Where a block holds, for a terminal or the dashboard."""
    return "everywhere" if b.guild_id is None else f"guild {b.guild_id}"


def blocked_text(user_id: int, guild_id: int | None, reason: str) -> str:
    """What the terminal and the dashboard say after a block (guild None: everywhere)."""
    where = (
        "everywhere (every server and direct messages)"
        if guild_id is None
        else f"in server {guild_id} only"
    )
    return f"Blocked {user_label(user_id)} {where}: {reason}"


def unblocked_text(user_id: int, guild_id: int | None, done: Unblocked) -> str:
    """What the terminal and the dashboard say after an unblock, naming the blocks that stand."""
    who = user_label(user_id)
    kind = "bot-wide block" if guild_id is None else f"block in server {guild_id}"
    text = f"Lifted {who}'s {kind}." if done.lifted else f"{who} had no {kind}."
    if done.still:
        text += f" Still blocked: {', '.join(block_where(b) for b in done.still)}."
    return text


def block_dict(b: Block) -> dict[str, Any]:
    """A block as JSON-ready data (guild_id None: everywhere)."""
    return {
        "user_id": b.user_id,
        "guild_id": b.guild_id,
        "everywhere": b.everywhere,
        "reason": b.reason,
        "blocked_at": b.blocked_at.isoformat(),
    }


def job_dict(j: Job) -> dict[str, Any]:
    """A job as JSON-ready data."""
    out: dict[str, Any] = {}
    for name in j.__dataclass_fields__:
        value = getattr(j, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def jobs_table(jobs: Sequence[Job]) -> str:
    """Jobs as a terminal table."""
    rows = [
        (
            j.id,
            j.state,
            j.kind,
            user_label(j.user_id),
            "dm" if j.guild_id is None else j.guild_id,
            f"{j.images_delivered}/{j.images_requested}",
            j.backend,
            when(j.created_at),
        )
        for j in jobs
    ]
    return table(("id", "state", "kind", "user", "guild", "images", "backend", "created"), rows)


def job_text(j: Job, cost: tuple[str, int | None] | None) -> str:
    """One job in detail for a terminal."""
    billed = "-" if cost is None else ("unknown" if cost[1] is None else str(cost[1]))
    rows = [
        ("state", j.state),
        ("kind", j.kind + (f" of job {j.parent_job_id}" if j.parent_job_id else "")),
        ("user", user_label(j.user_id)),
        ("guild", "direct messages" if j.guild_id is None else j.guild_id),
        ("channel", j.channel_id),
        ("backend", j.backend + (f" ({j.backend_ref})" if j.backend_ref else "")),
        (
            "images",
            f"{j.images_requested} requested, {j.images_delivered} delivered,"
            f" {j.images_withheld} withheld",
        ),
        ("billed", billed),
        ("created", when(j.created_at)),
        ("started", when(j.started_at)),
        ("finished", when(j.finished_at)),
        ("input", j.input_key or "-"),
        ("messages", ", ".join(map(str, j.message_ids)) or "-"),
        ("error", j.error or "-"),
    ]
    params = ", ".join(f"{k}={v}" for k, v in sorted(j.request.items())) or "-"
    rows.append(("request", params))
    return f"Job {j.id}\n" + "\n".join(f"  {k:<9} {'-' if v is None else v}" for k, v in rows)


def run_with_store(settings: Settings, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open the existing books of `settings`, run `fn`, close; for the admin commands, which
    refuse (BooksMissing) rather than start empty books where the bot keeps none."""

    async def main() -> T:
        async with await Store.from_settings(settings, create=False) as store:
            return await fn(store)

    return asyncio.run(main())

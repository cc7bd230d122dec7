"""`remixbot stats [--guild G] [--since DATE] [--json]`: images and the backend's bill by guild,
member and day."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from bot.cli._common import cli_settings, plural, print_json
from bot.cli.quota import _id
from bot.store.admin import run_with_store, user_label
from bot.store.models import CLI_USER_ID
from bot.store.usage import Totals, UsageRow, totals_by


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a date as YYYY-MM-DD (UTC), not {text!r}"
        ) from None


def register(sub: argparse._SubParsersAction) -> None:
    """Add `stats` to the command line."""
    p = sub.add_parser("stats", help="images and backend cost by guild, member and day")
    p.add_argument("--guild", type=_id("guild"), help="only this server")
    p.add_argument("--since", type=_day, metavar="DATE", help="from this day on (YYYY-MM-DD, UTC)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_stats)


def _stats(args: argparse.Namespace) -> int:
    rows = run_with_store(cli_settings(), lambda s: s.usage(args.guild, args.since))
    if args.json:
        print_json(stats_dict(rows))
    elif not rows:
        print("No finished jobs match.")
    else:
        print(stats_text(rows))
    return 0


def _where(guild_id: int | None) -> str:
    return "DMs/terminal" if guild_id is None else str(guild_id)


def _member(user_id: int) -> str:
    """A member as the table shows them; the terminal's own user is no Discord member."""
    return "terminal (cli)" if user_id == CLI_USER_ID else user_label(user_id)


def stats_dict(rows: list[UsageRow]) -> dict[str, Any]:
    """Rows by day, guild and member, with totals by guild, by day and overall."""
    total = Totals()
    for row in rows:
        total = total.add(row)
    return {
        "rows": [r.to_dict() for r in rows],
        "by_guild": [{"guild_id": g, **vars(t)} for g, t in totals_by(rows, "guild_id").items()],
        "by_day": [{"day": d, **vars(t)} for d, t in totals_by(rows, "day").items()],
        "total": vars(total),
    }


def stats_text(rows: list[UsageRow]) -> str:
    """An aligned table, then the totals by guild."""
    head = ("day", "guild", "member", "jobs", "images", "billed", "cost unknown")
    body = [
        (
            r.day,
            _where(r.guild_id),
            _member(r.user_id),
            str(r.jobs),
            str(r.images),
            str(r.billed),
            str(r.unknown_cost),
        )
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i >= 3 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [fmt(head), *(fmt(b) for b in body), ""]
    for guild, t in totals_by(rows, "guild_id").items():
        # Only the jobs that delivered count as delivering: failed ones are counted apart.
        lines.append(
            f"{_where(guild)}: {plural(t.images, 'image')} delivered by {t.delivered_jobs} of"
            f" {plural(t.jobs, 'job')}; the backend billed {plural(t.billed, 'image')}"
            + (f" ({plural(t.unknown_cost, 'job')} of unknown cost)" if t.unknown_cost else "")
        )
    lines.append("(billed: images the backend charged the bot's key for, withheld ones included)")
    return "\n".join(lines)

"""A server's usage in the current quota period, for its admins: images charged, the members who
used most, and what the backend billed for the server's jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.store.db import Db
from bot.store.models import FAIL_STATES
from bot.store.periods import iso, period_bounds, utc
from bot.store.policies import PolicyStore
from bot.store.quota_rules import scope_of

TOP_MEMBERS = 5


@dataclass(frozen=True)
class GuildUsage:
    """One server's use of the bot in the current period (guild None: direct messages)."""

    guild_id: int | None
    period: str
    period_start: datetime
    resets_at: datetime
    images: int  # charged to members this period (resets forgiven)
    top: tuple[tuple[int, int], ...]  # (user id, images charged), most first
    billed: int  # images the backend billed for jobs that ended this period
    unknown_bills: int  # jobs that ended this period whose bill is unknown


class Usage:
    """Usage queries on the store's connection (writer thread only)."""

    def __init__(self, db: Db, policies: PolicyStore) -> None:
        self.db = db
        self.policies = policies

    def guild_usage(self, guild_id: int | None, now: datetime | None) -> GuildUsage:
        """The server's usage in the period the default quota uses now."""
        period = self.policies.default_policy()[1]
        start, end = period_bounds(period, self.policies.defaults.reset_hour, utc(now))
        scope = scope_of(guild_id)
        hours = (iso(start)[:13], iso(end)[:13])
        rows = self.db.conn.execute(
            "SELECT user_id, sum(settled - reset) AS n FROM quota_usage"
            " WHERE scope = ? AND hour >= ? AND hour < ? GROUP BY user_id"
            " HAVING n > 0 ORDER BY n DESC, user_id",
            (scope, *hours),
        ).fetchall()
        final = ", ".join(f"'{s}'" for s in ("delivered", *FAIL_STATES))
        guild_sql = "guild_id IS NULL" if guild_id is None else "guild_id = ?"
        bill = self.db.one(
            "SELECT coalesce(sum(images_billed), 0),"
            " coalesce(sum(CASE WHEN images_billed IS NULL THEN 1 ELSE 0 END), 0)"
            f" FROM jobs WHERE {guild_sql} AND state IN ({final})"
            " AND finished_at >= ? AND finished_at < ?",
            (*(() if guild_id is None else (guild_id,)), iso(start), iso(end)),
        )
        return GuildUsage(
            guild_id=guild_id,
            period=period,
            period_start=start,
            resets_at=end,
            images=sum(r["n"] for r in rows),
            top=tuple((r["user_id"], r["n"]) for r in rows[:TOP_MEMBERS]),
            billed=bill[0] if bill else 0,
            unknown_bills=bill[1] if bill else 0,
        )

"""Usage over time: images delivered and the backend's bill by day, guild and member (for
`remixbot stats` and the dashboard's chart), and one server's current quota period (for
`/remixadmin usage`). Read-only."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from bot.store.db import Conn
from bot.store.periods import iso, period_bounds, utc
from bot.store.policies import PolicyStore

TOP_MEMBERS = 5


@dataclass(frozen=True)
class UsageRow:
    """One day of one member in one guild (guild None: direct messages and the terminal)."""

    day: str  # YYYY-MM-DD, UTC, the day the job was accepted
    guild_id: int | None
    user_id: int
    jobs: int  # finished jobs, whatever their end
    images: int  # delivered to the member (what their quota was charged)
    billed: int  # images the backend billed (withheld and unposted ones included)
    unknown_cost: int  # jobs whose bill is unknown (outcome unknown at the backend)
    delivered_jobs: int  # jobs that delivered at least one image

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values."""
        return asdict(self)


def usage_rows(
    conn: Conn, guild_id: int | None = None, since: date | datetime | None = None
) -> list[UsageRow]:
    """Final jobs grouped by day, guild and member, oldest day first (blocking); `since` a day,
    or an exact time (a quota period's start)."""
    where = ["state IN ('delivered', 'failed', 'cancelled', 'unknown')"]
    params: list[Any] = []
    if guild_id is not None:
        where.append("guild_id = ?")
        params.append(guild_id)
    if since is not None:
        # created_at is fixed-width ISO text in UTC (bot/store/periods.iso): it sorts as text.
        where.append("created_at >= ?")
        params.append(iso(since) if isinstance(since, datetime) else since.isoformat())
    rows = conn.execute(
        f"""
        SELECT substr(created_at, 1, 10) AS day, guild_id, user_id, count(*) AS jobs,
               coalesce(sum(images_delivered), 0) AS images,
               coalesce(sum(images_billed), 0) AS billed,
               sum(CASE WHEN images_billed IS NULL THEN 1 ELSE 0 END) AS unknown_cost,
               sum(CASE WHEN images_delivered > 0 THEN 1 ELSE 0 END) AS delivered_jobs
        FROM jobs WHERE {" AND ".join(where)}
        GROUP BY day, guild_id, user_id
        ORDER BY day, guild_id IS NULL, guild_id, user_id
        """,
        params,
    ).fetchall()
    return [UsageRow(*tuple(r)) for r in rows]


@dataclass(frozen=True)
class Totals:
    """Sums over some usage rows."""

    jobs: int = 0
    images: int = 0
    billed: int = 0
    unknown_cost: int = 0
    delivered_jobs: int = 0

    def add(self, row: UsageRow) -> Totals:
        """These totals with one more row."""
        return Totals(
            self.jobs + row.jobs,
            self.images + row.images,
            self.billed + row.billed,
            self.unknown_cost + row.unknown_cost,
            self.delivered_jobs + row.delivered_jobs,
        )


def totals_by(rows: list[UsageRow], key: str) -> dict[Any, Totals]:
    """Totals per value of one field (`day`, `guild_id` or `user_id`), in first-seen order."""
    out: dict[Any, Totals] = {}
    for row in rows:
        k = getattr(row, key)
        out[k] = out.get(k, Totals()).add(row)
    return out


@dataclass(frozen=True)
class GuildUsage:
    """One server's use of the bot in the current quota period (jobs accepted since it began)."""

    guild_id: int
    period: str
    period_start: datetime
    resets_at: datetime
    images: int  # delivered to members
    top: tuple[tuple[int, int], ...]  # (user id, images delivered), most first
    billed: int  # images the backend billed
    unknown_bills: int  # jobs whose bill is unknown


def guild_usage(
    conn: Conn, policies: PolicyStore, guild_id: int, now: datetime | None
) -> GuildUsage:
    """A server's usage in the period the default quota uses now (blocking)."""
    period = policies.default_policy()[1]
    start, end = period_bounds(period, policies.defaults.reset_hour, utc(now))
    rows = usage_rows(conn, guild_id, start)
    total = Totals()
    for row in rows:
        total = total.add(row)
    members = sorted(
        ((user, t.images) for user, t in totals_by(rows, "user_id").items() if t.images),
        key=lambda pair: (-pair[1], pair[0]),
    )
    return GuildUsage(
        guild_id=guild_id,
        period=period,
        period_start=start,
        resets_at=end,
        images=total.images,
        top=tuple(members[:TOP_MEMBERS]),
        billed=total.billed,
        unknown_bills=total.unknown_cost,
    )

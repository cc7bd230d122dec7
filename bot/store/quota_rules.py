"""The quota rule: what a user may reserve now, decided in SQL and reported in Python.

The reserving insert decides in ONE SQL statement (`reserve`: policy, the period's sums and the
insert, so a burst costs one statement per job); `status` reports the same rule for the quota
report and the refusal sentence. Which policy applies (the member's limit, an exempt role, the
blocks that hold here) is written once, as SQL parts both statements are built from (`_limit`,
`_exempt`, `_block`); only the period's arithmetic is written twice, and
tests/test_quota_rules_agree.py checks over many random policies that the two agree. Grants and
resets are ledger rows that move a user's allowance.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.store.db import Conn, StoreDb
from bot.store.errors import QuotaExceeded, UserBlocked
from bot.store.models import NewJob, QuotaDefaults, QuotaStatus, check_count
from bot.store.periods import PERIODS, iso, period_bounds, utc
from bot.store.policies import EVERYWHERE


def scope_of(guild_id: int | None) -> int:
    """Ledger scope of a guild; direct messages (None) are their own scope, 0."""
    return 0 if guild_id is None else int(guild_id)


# The columns the reserving insert writes (values by name, from `Jobs.submit_job`), then the
# rule's own parameters: the configured default and the first and end hour of each period. The
# statement names them; they are bound by position in this order (cheaper than by name).
INSERT_COLUMNS = (
    "interaction_id",
    "guild_id",
    "scope",
    "channel_id",
    "user_id",
    "kind",
    "parent_job_id",
    "request",
    "input_key",
    "style_ref_keys",
    "mask_key",
    "created_at",
    "backend",
    "images_requested",
    "images_reserved",
    "request_message_id",
    "owner",
)
RULE_PARAMS = (
    "default_limit",
    "default_period",
    *(f"{p}_{edge}" for p in PERIODS for edge in ("start", "end")),
)
_insert_values = operator.itemgetter(*INSERT_COLUMNS)


def _order(n_roles: int) -> tuple[str, ...]:
    """The parameters of the reserving insert, in the order they are bound."""
    return (*INSERT_COLUMNS, *RULE_PARAMS, *(f"role{i}" for i in range(n_roles)))


def _numbered(sql: str, n_roles: int) -> str:
    """`sql` with each `:name` turned into `?N`: INSERT_COLUMNS, RULE_PARAMS, then the roles."""
    number = {name: f"?{i}" for i, name in enumerate(_order(n_roles), 1)}
    return re.sub(r":([a-z_][a-z0-9_]*)", lambda m: number[m.group(1)], sql)


def _pg_type(name: str) -> str:
    """The PostgreSQL type of a parameter (psycopg sends None untyped; the insert needs types)."""
    if name in ("images_requested", "images_reserved", "default_limit"):
        return "integer"
    if name.endswith("_id") or name == "scope" or name.startswith("role"):
        return "bigint"
    return "text"


def _positional(sql: str, n_roles: int) -> tuple[str, Callable[[Sequence[Any]], tuple[Any, ...]]]:
    """`sql` with each `:name` turned into a typed `?` (PostgreSQL has no `?N`), and a function
    picking, from the values in `_order`, one value per placeholder."""
    order = _order(n_roles)
    picks: list[int] = []

    def placeholder(m: re.Match[str]) -> str:
        picks.append(order.index(m.group(1)))
        return f"?::{_pg_type(m.group(1))}"

    text = re.sub(r":([a-z_][a-z0-9_]*)", placeholder, sql)
    return text, operator.itemgetter(*picks)


def _period_case(edge: str) -> str:
    """SQL choosing the `edge` ('start' or 'end') hour of the stored period, one WHEN a period."""
    whens = " ".join(f"WHEN '{p}' THEN :{p}_{edge}" for p in PERIODS)
    return f"CASE period {whens} END"


# The stored default limit and period, else the configured ones: the rule's first step, a
# one-row table `d` (lim, period) both queries read.
_DEFAULTS = """
    d AS (
        SELECT coalesce((SELECT limit_images FROM policy_defaults WHERE id = 1),
                        :default_limit) AS lim,
               coalesce((SELECT period FROM policy_defaults WHERE id = 1),
                        :default_period) AS period
    )"""


def _roles(n_roles: int) -> str:
    return ", ".join(f":role{i}" for i in range(n_roles))


def _limit(n_roles: int, greatest: str) -> str:
    """The member's limit, the rule in ONE place (the reserving insert and the report both
    select it): the server's limit where one is set, else the default (`d.lim`); a role tier
    above it raises it (the highest of the two wins). Direct messages have no server limit and
    no roles: the default. `greatest` is the database's largest-of-several function."""
    base = "coalesce((SELECT limit_images FROM policy_guilds WHERE guild_id = :guild_id), lim)"
    if not n_roles:
        return base
    tiers = (
        "(SELECT max(limit_images) FROM policy_roles"
        f" WHERE guild_id = :guild_id AND role_id IN ({_roles(n_roles)}))"
    )
    # Limits are never negative, so no tier counts as 0 (SQLite's max() of a NULL is NULL).
    return f"{greatest}({base}, coalesce({tiers}, 0))"


def _exempt(n_roles: int) -> str:
    """True when one of the member's roles is exempt in the server (unlimited)."""
    if not n_roles:
        return "false"
    return (
        "EXISTS (SELECT 1 FROM policy_exempt_roles"
        f" WHERE guild_id = :guild_id AND role_id IN ({_roles(n_roles)}))"
    )


def _block(where: str) -> str:
    """The blocks of `:user_id` that hold in the scope `where` (an SQL expression): the owner's
    everywhere (guild_id 0), and the server's own."""
    return f"SELECT reason FROM policy_blocked WHERE user_id = :user_id AND guild_id = {where}"


def _reserve_template(n_roles: int, greatest: str) -> str:
    """INSERT the job only if the user may reserve its images now; no row back otherwise.

    Parameters by name (see `_order`): the job's INSERT_COLUMNS, the RULE_PARAMS and `role0…`
    (the member's roles). The rules are the ones `status` reports (and explains a refusal with):
    a user blocked here (everywhere, or in this server) never; an exempt role always; otherwise
    the period's grants, minus what is reserved and not refunded or reset, plus the member's
    limit (`_limit`) must cover the images. A replayed interaction id inserts nothing.
    """
    return f"""
        WITH {_DEFAULTS}, h AS (
            SELECT {_period_case("start")} AS h0, {_period_case("end")} AS h1, lim FROM d
        )
        INSERT INTO jobs (state, {", ".join(INSERT_COLUMNS)})
        SELECT 'queued', {", ".join(f":{c}" for c in INSERT_COLUMNS)}
        FROM h
        WHERE NOT EXISTS ({_block(f"{EVERYWHERE}")} UNION ALL {_block(":scope")})
          AND ({_exempt(n_roles)} OR :images_requested <= {_limit(n_roles, greatest)}
              + (SELECT coalesce(sum(granted - reserved + refunded + reset), 0) FROM quota_usage
                 WHERE user_id = :user_id AND scope = :scope AND hour >= h.h0 AND hour < h.h1))
        ON CONFLICT (interaction_id) DO NOTHING
        RETURNING id
    """


def _policy_template(n_roles: int, greatest: str) -> str:
    """The member's period, limit, exemption and blocks (everywhere, here) in one query, from
    the same parts as the reserving insert. In direct messages `:guild_id` is NULL, so only the
    default and the owner's block apply."""
    return f"""
        WITH {_DEFAULTS}
        SELECT period, {_limit(n_roles, greatest)}, {_exempt(n_roles)},
               ({_block(f"{EVERYWHERE}")}), ({_block(":guild_id")})
        FROM d
    """


@functools.cache
def policy_sql(n_roles: int, greatest: str) -> tuple[str, tuple[str, ...]]:
    """The report's query with `?` placeholders (both databases take them: bot/store/pg.py),
    and the parameter names in the order they are bound."""
    names: list[str] = []

    def placeholder(m: re.Match[str]) -> str:
        names.append(m.group(1))
        return "?"

    text = re.sub(r":([a-z_][a-z0-9_]*)", placeholder, _policy_template(n_roles, greatest))
    return text, tuple(names)


@functools.cache
def reserve_sql(n_roles: int) -> str:
    """The reserving insert for SQLite, its parameters bound by number (see `_numbered`)."""
    return _numbered(_reserve_template(n_roles, "max"), n_roles)


@functools.cache
def reserve_pg(n_roles: int) -> tuple[str, Callable[[Sequence[Any]], tuple[Any, ...]]]:
    """The reserving insert for PostgreSQL, and how to lay out its values (see `_positional`)."""
    return _positional(_reserve_template(n_roles, "GREATEST"), n_roles)


class QuotaRules:
    """The quota rule in SQL (`reserve`) and in Python (`status`), grants and resets."""

    def __init__(self, db: StoreDb, defaults: QuotaDefaults) -> None:
        self.db = db
        self.defaults = defaults
        self._rule_cache: tuple[datetime | None, tuple[Any, ...]] = (None, ())

    # --- the rule in SQL ----------------------------------------------------------------------

    def reserve(
        self,
        c: Conn,
        job: Mapping[str, Any],
        role_ids: Sequence[int],
        now: datetime,
    ) -> int | None:
        """Insert `job` (its INSERT_COLUMNS by name) if the user may reserve its images now: its id.

        None when nothing was inserted: a replayed interaction id, a block or the quota
        (`refusal` tells which of the last two).
        """
        args = (*_insert_values(job), *self._rule_values(now), *map(int, role_ids))
        if self.db.kind == "sqlite":  # the hot path: one statement, under SQLite's write lock
            row = c.execute(reserve_sql(len(role_ids)), args).fetchone()
        else:
            # PostgreSQL lets transactions run side by side: the user's reservations take turns,
            # so each one's sums see every reservation committed before it.
            self.db.take_turns(f"quota:{job['user_id']}:{job['scope']}")
            sql, layout = reserve_pg(len(role_ids))
            row = c.execute(sql, layout(args)).fetchone()
        return None if row is None else row[0]

    def _rule_values(self, now: datetime) -> tuple[Any, ...]:
        """The RULE_PARAMS for `now`: the configured default, and the first and end hour
        ('YYYY-MM-DDTHH') of each period containing `now`.

        Cached per hour: periods start on the hour, so the answer only changes when the hour does.
        """
        hour = now.replace(minute=0, second=0, microsecond=0)
        if self._rule_cache[0] != hour:
            values: dict[str, Any] = {
                "default_limit": self.defaults.limit,
                "default_period": self.defaults.period,
            }
            for p in PERIODS:
                start, end = period_bounds(p, self.defaults.reset_hour, now)
                values[f"{p}_start"], values[f"{p}_end"] = iso(start)[:13], iso(end)[:13]
            self._rule_cache = (hour, tuple(values[name] for name in RULE_PARAMS))
        return self._rule_cache[1]

    # --- the rule in Python ---------------------------------------------------------------------

    def _policy(
        self,
        user_id: int,
        guild_id: int | None,
        role_ids: Sequence[int],
    ) -> tuple[int | None, bool, str, str | None, str | None]:
        """(limit or None, exempt, period, blocked everywhere, blocked here): one query, whose
        limit is the reserving insert's own SQL (`_limit`); an exempt role means unlimited."""
        roles = [int(r) for r in role_ids] if guild_id is not None else []
        sql, names = policy_sql(len(roles), "max" if self.db.kind == "sqlite" else "GREATEST")
        values: dict[str, Any] = {
            "user_id": user_id,
            "guild_id": guild_id,
            "default_limit": self.defaults.limit,
            "default_period": self.defaults.period,
            **{f"role{i}": r for i, r in enumerate(roles)},
        }
        row = self.db.conn.execute(sql, tuple(values[n] for n in names)).fetchone()
        period, limit, exempt, everywhere, here = tuple(row)
        if exempt:
            return None, True, period, everywhere, here
        return limit, False, period, everywhere, here

    def _sums(self, user_id: int, scope: int, start: datetime, end: datetime) -> dict[str, int]:
        row = self.db.conn.execute(
            "SELECT coalesce(sum(reserved), 0), coalesce(sum(settled), 0),"
            " coalesce(sum(refunded), 0), coalesce(sum(granted), 0), coalesce(sum(reset), 0)"
            " FROM quota_usage WHERE user_id = ? AND scope = ? AND hour >= ? AND hour < ?",
            (user_id, scope, iso(start)[:13], iso(end)[:13]),
        ).fetchone()
        return dict(zip(("reserve", "settle", "refund", "grant", "reset"), row, strict=True))

    def status(
        self, user_id: int, guild_id: int | None, role_ids: Sequence[int], now: datetime
    ) -> QuotaStatus:
        """The user's quota in the guild (None = direct messages) for the period of `now`."""
        limit, exempt, period, everywhere, here = self._policy(user_id, guild_id, role_ids)
        start, end = period_bounds(period, self.defaults.reset_hour, now)
        s = self._sums(user_id, scope_of(guild_id), start, end)
        used = s["settle"] - s["reset"]
        reserved = s["reserve"] - s["settle"] - s["refund"]
        remaining = None
        if limit is not None:
            remaining = max(0, limit + s["grant"] - used - reserved)
        return QuotaStatus(
            user_id=user_id,
            guild_id=guild_id,
            limit=limit,
            granted=s["grant"],
            used=used,
            reserved=reserved,
            remaining=remaining,
            period=period,
            period_start=start,
            resets_at=end,
            blocked_everywhere=everywhere,
            blocked_here=here,
            exempt=exempt,
        )

    def quota_status(
        self, user_id: int, guild_id: int | None, role_ids: Sequence[int], now: datetime | None
    ) -> QuotaStatus:
        """The user's quota in the guild (None = direct messages) for the current period."""
        return self.status(user_id, guild_id, role_ids, utc(now))

    def refusal(self, new: NewJob, now: datetime) -> Exception:
        """Why the reserving insert refused `new` (not a replay): UserBlocked or QuotaExceeded."""
        status = self.status(new.user_id, new.guild_id, new.role_ids, now)
        if status.blocked_reason is not None:
            return UserBlocked(status.blocked_reason)
        if status.exempt:  # exempt, yet the insert refused: the two encodings disagree
            return RuntimeError("the reservation was refused for an exempt user")
        return QuotaExceeded.from_status(status, new.images)

    # --- grants and resets ------------------------------------------------------------------------

    def _ledger(self, c: Conn, now: datetime, scope: int, user_id: int, kind: str, n: int) -> None:
        c.execute(
            "INSERT INTO quota_ledger (ts, period_ts, scope, user_id, job_id, kind, amount)"
            " VALUES (?, ?, ?, ?, NULL, ?, ?)",
            (iso(now), iso(now), scope, user_id, kind, n),
        )

    def grant(
        self, user_id: int, guild_id: int | None, n: int, now: datetime | None
    ) -> QuotaStatus:
        """Add `n` images to the user's allowance for the current period."""
        check_count(n, "A grant", 1)
        now = utc(now)
        with self.db.write() as c:
            self.db.take_turns(f"quota:{user_id}:{scope_of(guild_id)}")
            self._ledger(c, now, scope_of(guild_id), user_id, "grant", n)
            return self.status(user_id, guild_id, (), now)

    def reset(self, user_id: int, guild_id: int | None, now: datetime | None) -> QuotaStatus:
        """Forgive what the user was charged this period; jobs in flight stay reserved."""
        now = utc(now)
        with self.db.write() as c:
            self.db.take_turns(f"quota:{user_id}:{scope_of(guild_id)}")
            used = self.status(user_id, guild_id, (), now).used
            if used > 0:
                self._ledger(c, now, scope_of(guild_id), user_id, "reset", used)
            return self.status(user_id, guild_id, (), now)

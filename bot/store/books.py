"""The synchronous core of the store: one SQLite connection, used only by the writer thread.

Every writing operation runs in `BEGIN IMMEDIATE … COMMIT`, so the write lock is taken before the
first read and the busy timeout applies (a deferred transaction could fail at once on upgrade).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from bot.errors import InvalidRequest
from bot.store.errors import JobNotFound, QuotaExceeded, StoreBusy, UserBlocked
from bot.store.inputs import InputStore, check_key
from bot.store.models import (
    ANON_USER_ID,
    FAIL_STATES,
    JOB_KINDS,
    RESUMABLE_BACKENDS,
    ForgetReport,
    Job,
    LedgerBalance,
    NewJob,
    Policies,
    QuotaDefaults,
    QuotaStatus,
    ReconcileReport,
)
from bot.store.owners import OwnerLock, owner_alive, owners_folder, sweep_stale
from bot.store.periods import iso, period_bounds, utc
from bot.store.schema import apply_migrations

PERIODS = ("daily", "weekly", "monthly")
BUSY_TIMEOUT_MS = 5000
MIN_SQLITE = (3, 35, 0)  # RETURNING
_OPEN = "('queued', 'running')"


def _scope(guild_id: int | None) -> int:
    """Ledger scope of a guild; direct messages (None) are their own scope, 0."""
    return 0 if guild_id is None else int(guild_id)


def _list(text: str) -> tuple[Any, ...]:
    return () if text == "[]" else tuple(json.loads(text))


def _ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


# The jobs columns in the order of Job's fields: reads use positions, not name lookups.
JOB_COLUMNS = ", ".join(
    (
        "id, interaction_id, guild_id, channel_id, user_id, kind, parent_job_id, request",
        "input_key, style_ref_keys, state, created_at, started_at, finished_at, backend",
        "backend_ref, images_requested, images_reserved, images_delivered, images_withheld",
        "message_ids, message_channel_id, request_message_id, error",
    )
)


def _job(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    """A Job from a row selected (or returned) as JOB_COLUMNS."""
    r = tuple(row)
    return Job(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        json.loads(r[7]),
        r[8],
        _list(r[9]),
        r[10],
        datetime.fromisoformat(r[11]),
        _ts(r[12]),
        _ts(r[13]),
        r[14],
        r[15],
        r[16],
        r[17],
        r[18],
        r[19],
        _list(r[20]),
        r[21],
        r[22],
        r[23],
    )


def _snowflakes(**ids: Any) -> list[int | None]:
    """Each id as an int (None stays None); one sentence for an id that is not a number."""
    out: list[int | None] = []
    for name, value in ids.items():
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            out.append(value)
            continue
        try:
            out.append(int(value))
        except (TypeError, ValueError):
            raise InvalidRequest(f"{name} must be a whole number, not {value!r}.") from None
    return out


def _count(n: Any, name: str, lo: int = 0) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < lo:
        raise InvalidRequest(f"{name} must be a whole number of at least {lo}, not {n!r}.")
    return n


@functools.cache
def _reserve_sql(n_roles: int) -> str:
    """INSERT the job only if the user may reserve its images now; no row back otherwise.

    Parameters 1-14 are the job's columns, 15-16 the configured default limit and period,
    17-22 the first and end hour of the daily, weekly and monthly period, 23 the owner token,
    then the role ids.
    The rules are the ones `_policy` and `_not_reserved` spell out (and explain a refusal with):
    blocked users never; an exempt role always; otherwise the period's grants, minus what is
    reserved and not refunded or reset, plus the highest of the default, the guild override and
    the role tiers must cover the images. A replayed interaction id inserts nothing.
    """
    roles = ", ".join(f"?{24 + i}" for i in range(n_roles))
    exempt = "0"
    role_limit = "NULL"
    if n_roles:
        exempt = (
            "EXISTS (SELECT 1 FROM policy_exempt_roles"
            f" WHERE guild_id = ?2 AND role_id IN ({roles}))"
        )
        role_limit = f"(SELECT max(limit_images) FROM policy_roles WHERE guild_id = ?2 AND role_id IN ({roles}))"
    return f"""
        WITH d AS (
            SELECT coalesce((SELECT limit_images FROM policy_defaults WHERE id = 1), ?15) AS lim,
                   coalesce((SELECT period FROM policy_defaults WHERE id = 1), ?16) AS period
        ), h AS (
            SELECT CASE period WHEN 'daily' THEN ?17 WHEN 'weekly' THEN ?19 ELSE ?21 END AS h0,
                   CASE period WHEN 'daily' THEN ?18 WHEN 'weekly' THEN ?20 ELSE ?22 END AS h1,
                   lim
            FROM d
        )
        INSERT INTO jobs (interaction_id, guild_id, scope, channel_id, user_id, kind,
            parent_job_id, request, input_key, style_ref_keys, state, created_at, backend,
            images_requested, images_reserved, request_message_id, owner)
        SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'queued', ?11, ?12, ?13, ?13, ?14, ?23
        FROM h
        WHERE NOT EXISTS (SELECT 1 FROM policy_blocked WHERE user_id = ?5)
          AND ({exempt} OR ?13 <= max(
                lim,
                coalesce((SELECT limit_images FROM policy_guilds WHERE guild_id = ?2), lim),
                coalesce({role_limit}, lim))
              + (SELECT coalesce(sum(granted - reserved + refunded + reset), 0) FROM quota_usage
                 WHERE user_id = ?5 AND scope = ?3 AND hour >= h.h0 AND hour < h.h1))
        ON CONFLICT (interaction_id) DO NOTHING
        RETURNING id
    """


class Books:
    """Jobs, the quota ledger, policies and backend costs on one connection (one thread only)."""

    def __init__(
        self,
        path: Path,
        defaults: QuotaDefaults,
        inputs: InputStore,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        owner: OwnerLock | None = None,
    ) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} is too old; the store needs 3.35.0 or newer."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        self.defaults = defaults
        self.inputs = inputs
        self._owner_lock = owner
        self.owner = owner.token if owner is not None else None
        self._owners = owners_folder(path)
        self._hours_cache: tuple[datetime | None, tuple[str, ...]] = (None, ())
        # isolation_level=None: we issue every BEGIN ourselves (Python's implicit BEGIN is deferred).
        self.conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        try:
            apply_migrations(Database(self.conn, execute_plugins=False))
        except sqlite3.OperationalError as exc:
            self.conn.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusy() from exc
            raise

    def close(self) -> None:
        """Close the connection (checkpoints the WAL when it is the last one) and give up the
        claim on this process's jobs."""
        try:
            self.conn.close()
        finally:
            if self._owner_lock is not None:
                self._owner_lock.release()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One writing transaction: BEGIN IMMEDIATE, commit on success, roll back on any error.

        Inside a group commit (the writer already holds BEGIN IMMEDIATE and a SAVEPOINT for this
        call) it adds nothing: the writer rolls back to the savepoint if the call raises.
        """
        if self.conn.in_transaction:
            yield self.conn
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusy() from exc
            raise
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            # Also when COMMIT itself fails: never leave a transaction open on the connection.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    # --- policies ---------------------------------------------------------------------------

    def _default_policy(self) -> tuple[int, str]:
        row = self._one("SELECT limit_images, period FROM policy_defaults WHERE id = 1")
        if row is None:
            return self.defaults.limit, self.defaults.period
        return row["limit_images"], row["period"]

    def _blocked(self, user_id: int) -> str | None:
        row = self._one("SELECT reason FROM policy_blocked WHERE user_id = ?", (user_id,))
        return None if row is None else row["reason"]

    def _policy(
        self,
        user_id: int,
        guild_id: int | None,
        role_ids: Sequence[int],
    ) -> tuple[int | None, bool, str, str | None]:
        """(limit or None, exempt, period, blocked reason): one query.

        The effective limit is the highest of the default, the guild override and the user's
        role tiers; an exempt role means unlimited; direct messages use the default only.
        """
        roles = [int(r) for r in role_ids] if guild_id is not None else []
        marks = ",".join("?" * len(roles))
        role_sql = "NULL, NULL"
        if roles:
            role_sql = (
                "(SELECT max(limit_images) FROM policy_roles"
                f" WHERE guild_id = ? AND role_id IN ({marks})),"
                " (SELECT 1 FROM policy_exempt_roles"
                f" WHERE guild_id = ? AND role_id IN ({marks}))"
            )
        row = self.conn.execute(
            "SELECT (SELECT reason FROM policy_blocked WHERE user_id = ?),"
            " (SELECT limit_images FROM policy_defaults WHERE id = 1),"
            " (SELECT period FROM policy_defaults WHERE id = 1),"
            " (SELECT limit_images FROM policy_guilds WHERE guild_id = ?),"
            f" {role_sql}",
            (user_id, guild_id, *([guild_id, *roles] * 2 if roles else [])),
        ).fetchone()
        blocked, d_limit, d_period, g_limit, r_limit, exempt = tuple(row)
        period = d_period or self.defaults.period
        if exempt:
            return None, True, period, blocked
        limits = [self.defaults.limit if d_limit is None else d_limit]
        if guild_id is not None:
            limits += [n for n in (g_limit, r_limit) if n is not None]
        return max(limits), False, period, blocked

    def _sums(self, user_id: int, scope: int, start: datetime, end: datetime) -> dict[str, int]:
        row = self.conn.execute(
            "SELECT coalesce(sum(reserved), 0), coalesce(sum(settled), 0),"
            " coalesce(sum(refunded), 0), coalesce(sum(granted), 0), coalesce(sum(reset), 0)"
            " FROM quota_usage WHERE user_id = ? AND scope = ? AND hour >= ? AND hour < ?",
            (user_id, scope, iso(start)[:13], iso(end)[:13]),
        ).fetchone()
        return dict(zip(("reserve", "settle", "refund", "grant", "reset"), row, strict=True))

    def _status(
        self, user_id: int, guild_id: int | None, role_ids: Sequence[int], now: datetime
    ) -> QuotaStatus:
        limit, exempt, period, blocked = self._policy(user_id, guild_id, role_ids)
        start, end = period_bounds(period, self.defaults.reset_hour, now)
        s = self._sums(user_id, _scope(guild_id), start, end)
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
            blocked_reason=blocked,
            exempt=exempt,
        )

    def quota_status(
        self, user_id: int, guild_id: int | None, role_ids: Sequence[int], now: datetime | None
    ) -> QuotaStatus:
        """The user's quota in the guild (None = direct messages) for the current period."""
        return self._status(user_id, guild_id, role_ids, utc(now))

    def set_default(self, limit: int, period: str | None) -> Policies:
        """Store the default limit (and period) that apply everywhere."""
        _count(limit, "The default limit")
        if period is not None and period not in PERIODS:
            raise InvalidRequest(f"The period must be daily, weekly or monthly, not {period!r}.")
        with self._write() as c:
            current = self._default_policy()[1]
            c.execute(
                "INSERT INTO policy_defaults (id, limit_images, period, updated_at)"
                " VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " limit_images = excluded.limit_images, period = excluded.period,"
                " updated_at = excluded.updated_at",
                (limit, period or current, iso(utc())),
            )
        return self.policies()

    def set_guild(self, guild_id: int, limit: int | None) -> None:
        """Set (or with None remove) a guild's limit override."""
        with self._write() as c:
            if limit is None:
                c.execute("DELETE FROM policy_guilds WHERE guild_id = ?", (guild_id,))
            else:
                _count(limit, "The guild limit")
                c.execute(
                    "INSERT INTO policy_guilds VALUES (?, ?) ON CONFLICT (guild_id)"
                    " DO UPDATE SET limit_images = excluded.limit_images",
                    (guild_id, limit),
                )

    def set_role(self, guild_id: int, role_id: int, limit: int | None) -> None:
        """Set (or with None remove) a role tier's limit in a guild."""
        with self._write() as c:
            if limit is None:
                c.execute(
                    "DELETE FROM policy_roles WHERE guild_id = ? AND role_id = ?",
                    (guild_id, role_id),
                )
            else:
                _count(limit, "The role limit")
                c.execute(
                    "INSERT INTO policy_roles VALUES (?, ?, ?) ON CONFLICT (guild_id, role_id)"
                    " DO UPDATE SET limit_images = excluded.limit_images",
                    (guild_id, role_id, limit),
                )

    def set_exempt_role(self, guild_id: int, role_id: int, exempt: bool) -> None:
        """Make a role unlimited in a guild, or take that away."""
        with self._write() as c:
            if exempt:
                c.execute(
                    "INSERT OR IGNORE INTO policy_exempt_roles VALUES (?, ?)", (guild_id, role_id)
                )
            else:
                c.execute(
                    "DELETE FROM policy_exempt_roles WHERE guild_id = ? AND role_id = ?",
                    (guild_id, role_id),
                )

    def block(self, user_id: int, reason: str) -> None:
        """Refuse every new job of the user, giving `reason`."""
        reason = " ".join(str(reason).split())
        if not reason:
            raise InvalidRequest("A block needs a reason; the user is shown it.")
        if len(reason) > 300:
            raise InvalidRequest(
                f"A block reason can be at most 300 characters, not {len(reason)}."
            )
        with self._write() as c:
            c.execute(
                "INSERT INTO policy_blocked VALUES (?, ?, ?) ON CONFLICT (user_id)"
                " DO UPDATE SET reason = excluded.reason, blocked_at = excluded.blocked_at",
                (user_id, reason, iso(utc())),
            )

    def unblock(self, user_id: int) -> bool:
        """Lift a block; True when the user was blocked."""
        with self._write() as c:
            cur = c.execute("DELETE FROM policy_blocked WHERE user_id = ?", (user_id,))
            return cur.rowcount > 0

    def policies(self) -> Policies:
        """Every stored policy."""
        limit, period = self._default_policy()
        return Policies(
            default_limit=limit,
            period=period,
            reset_hour=self.defaults.reset_hour,
            guilds={r[0]: r[1] for r in self.conn.execute("SELECT * FROM policy_guilds")},
            roles={(r[0], r[1]): r[2] for r in self.conn.execute("SELECT * FROM policy_roles")},
            exempt_roles=tuple(
                (r[0], r[1]) for r in self.conn.execute("SELECT * FROM policy_exempt_roles")
            ),
            blocked={r[0]: r[1] for r in self.conn.execute("SELECT * FROM policy_blocked")},
        )

    def grant(
        self, user_id: int, guild_id: int | None, n: int, now: datetime | None
    ) -> QuotaStatus:
        """Add `n` images to the user's allowance for the current period."""
        _count(n, "A grant", 1)
        now = utc(now)
        with self._write() as c:
            self._ledger(c, now, now, _scope(guild_id), user_id, None, "grant", n)
            return self._status(user_id, guild_id, (), now)

    def reset(self, user_id: int, guild_id: int | None, now: datetime | None) -> QuotaStatus:
        """Forgive what the user was charged this period; jobs in flight stay reserved."""
        now = utc(now)
        with self._write() as c:
            used = self._status(user_id, guild_id, (), now).used
            if used > 0:
                self._ledger(c, now, now, _scope(guild_id), user_id, None, "reset", used)
            return self._status(user_id, guild_id, (), now)

    # --- jobs -------------------------------------------------------------------------------

    @staticmethod
    def _ledger(
        c: sqlite3.Connection,
        now: datetime,
        period_ts: datetime | str,
        scope: int,
        user_id: int,
        job_id: int | None,
        kind: str,
        amount: int,
    ) -> None:
        c.execute(
            "INSERT INTO quota_ledger (ts, period_ts, scope, user_id, job_id, kind, amount)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                iso(now),
                period_ts if isinstance(period_ts, str) else iso(period_ts),
                scope,
                user_id,
                job_id,
                kind,
                amount,
            ),
        )

    def submit_job(self, new: NewJob, now: datetime | None) -> Job:
        """Create the job (queued) and reserve its images in one transaction, or refuse."""
        _count(new.images, "The number of images", 1)
        if new.kind not in JOB_KINDS:
            raise InvalidRequest(f"A job's kind must be remix or reroll, not {new.kind!r}.")
        if new.input_key:
            check_key(new.input_key)
        for key in new.style_ref_keys:
            check_key(key)
        # Ids as SQLite stores them (INTEGER affinity), so the Job built below equals the row.
        interaction_id, guild_id, channel_id, user_id, parent_job_id, request_message_id = (
            _snowflakes(
                interaction_id=new.interaction_id,
                guild_id=new.guild_id,
                channel_id=new.channel_id,
                user_id=new.user_id,
                parent_job_id=new.parent_job_id,
                request_message_id=new.request_message_id,
            )
        )
        if user_id is None:
            raise InvalidRequest("A job needs the id of the user who asked.")
        request = json.dumps(dict(new.request), sort_keys=True, default=str)
        style_refs = json.dumps(list(new.style_ref_keys))
        now = utc(now)
        created = iso(now)
        scope = _scope(guild_id)
        roles = [int(r) for r in new.role_ids] if guild_id is not None else []
        with self._write() as c:
            # The common case is one statement: policy, the period's sums and the insert.
            row = c.execute(
                _reserve_sql(len(roles)),
                (
                    interaction_id,
                    guild_id,
                    scope,
                    channel_id,
                    user_id,
                    new.kind,
                    parent_job_id,
                    request,
                    new.input_key,
                    style_refs,
                    created,
                    new.backend,
                    new.images,
                    request_message_id,
                    self.defaults.limit,
                    self.defaults.period,
                    *self._hours(now),
                    self.owner,
                    *roles,
                ),
            ).fetchone()
            if row is None:  # a replay, a block or the quota: find out which
                ids = {"interaction_id": interaction_id, "guild_id": guild_id, "user_id": user_id}
                return self._not_reserved(dataclasses.replace(new, **ids), now)
        # The row is exactly what was inserted: build it here instead of reading it back.
        return Job(
            row[0],
            interaction_id,
            guild_id,
            channel_id,
            user_id,
            new.kind,
            parent_job_id,
            json.loads(request),
            new.input_key,
            _list(style_refs),
            "queued",
            datetime.fromisoformat(created),
            None,
            None,
            new.backend,
            None,
            new.images,
            new.images,
            0,
            0,
            (),
            None,
            request_message_id,
            None,
        )

    def _hours(self, now: datetime) -> tuple[str, ...]:
        """First and end hour ('YYYY-MM-DDTHH') of the daily, weekly and monthly period of `now`.

        Cached per hour: periods start on the hour, so the answer only changes when the hour does.
        """
        hour = now.replace(minute=0, second=0, microsecond=0)
        if self._hours_cache[0] != hour:
            bounds = [period_bounds(p, self.defaults.reset_hour, now) for p in PERIODS]
            self._hours_cache = (hour, tuple(iso(t)[:13] for pair in bounds for t in pair))
        return self._hours_cache[1]

    def _not_reserved(self, new: NewJob, now: datetime) -> Job:
        """Why the reserving insert wrote nothing: the replayed job, or the refusal to raise."""
        if new.interaction_id is not None:
            row = self._one(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE interaction_id = ?", (new.interaction_id,)
            )
            if row is not None:  # a replayed interaction: the same job, no second reservation
                return dataclasses.replace(_job(row), replayed=True)
        status = self._status(new.user_id, new.guild_id, new.role_ids, now)
        if status.blocked_reason is not None:
            raise UserBlocked(status.blocked_reason)
        if status.exempt:  # exempt, yet the insert refused: the two checks disagree
            raise RuntimeError("the reservation was refused for an exempt user")
        raise QuotaExceeded.from_status(status, new.images)

    def get_job(self, job_id: int) -> Job:
        """The job with this id, or JobNotFound."""
        row = self._one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    def find_job(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        row = self._one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    def mark_running(self, job_id: int, backend_ref: str | None, now: datetime | None) -> Job:
        """queued -> running; a job already final (e.g. cancelled) is returned unchanged."""
        with self._write() as c:
            row = c.execute(
                "UPDATE jobs SET state = 'running', started_at = ?,"
                " backend_ref = coalesce(?, backend_ref)"
                f" WHERE id = ? AND state = 'queued' RETURNING {JOB_COLUMNS}",
                (iso(utc(now)), backend_ref, job_id),
            ).fetchone()
            if row is None and backend_ref is not None:
                row = c.execute(
                    "UPDATE jobs SET backend_ref = ? WHERE id = ? AND state = 'running'"
                    f" RETURNING {JOB_COLUMNS}",
                    (backend_ref, job_id),
                ).fetchone()
            return _job(row) if row is not None else self.get_job(job_id)

    def set_backend_ref(self, job_id: int, ref: str) -> Job:
        """Save the backend's request or task id while the job is open (for resuming)."""
        with self._write() as c:
            row = c.execute(
                f"UPDATE jobs SET backend_ref = ? WHERE id = ? AND state IN {_OPEN} RETURNING {JOB_COLUMNS}",
                (ref, job_id),
            ).fetchone()
            return _job(row) if row is not None else self.get_job(job_id)

    def _close(
        self,
        c: sqlite3.Connection,
        job_id: int,
        state: str,
        *,
        delivered: int,
        withheld: int,
        billed: int | None,
        error: str | None,
        now: datetime,
    ) -> Job | None:
        """Move an open job to a final state, charge `delivered`, refund the rest; None if final."""
        # One statement; the jobs_close trigger writes the settle/refund rows and the cost.
        row = c.execute(
            "UPDATE jobs SET state = ?, finished_at = ?, images_delivered = ?,"
            " images_withheld = ?, error = ?, images_billed = ?"
            f" WHERE id = ? AND state IN {_OPEN} RETURNING {JOB_COLUMNS}",
            (state, iso(now), delivered, withheld, error, billed, job_id),
        ).fetchone()
        return None if row is None else _job(row)

    def settle(
        self, job_id: int, delivered: int, withheld: int, billed: int | None, now: datetime | None
    ) -> Job:
        """Charge the delivered images, refund the rest (withheld ones too); replays do nothing."""
        _count(delivered, "Delivered images")
        _count(withheld, "Withheld images")
        if billed is not None:
            _count(billed, "Billed images")
        with self._write() as c:
            job = self._close(
                c,
                job_id,
                "delivered",
                delivered=delivered,
                withheld=withheld,
                billed=billed,
                error=None,
                now=utc(now),
            )
            return job if job is not None else self.get_job(job_id)

    def fail(
        self, job_id: int, error: str, state: str, billed: int | None, now: datetime | None
    ) -> Job:
        """End the job as failed, cancelled or unknown and refund all of it; replays do nothing."""
        if state not in FAIL_STATES:
            raise InvalidRequest(f"A job can fail as failed, cancelled or unknown, not {state!r}.")
        if billed is not None:
            _count(billed, "Billed images")
        with self._write() as c:
            job = self._close(
                c,
                job_id,
                state,
                delivered=0,
                withheld=0,
                billed=billed,
                error=str(error)[:500],
                now=utc(now),
            )
            return job if job is not None else self.get_job(job_id)

    def record_messages(
        self, job_id: int, message_ids: Sequence[int], channel_id: int | None
    ) -> Job:
        """Remember the result messages (for rerolls from a reaction); replays add nothing."""
        ids = [int(m) for m in message_ids]
        with self._write() as c:
            job = self.get_job(job_id)
            merged = list(job.message_ids) + [m for m in ids if m not in job.message_ids]
            row = c.execute(
                "UPDATE jobs SET message_ids = ?, message_channel_id = coalesce(?, message_channel_id)"
                f" WHERE id = ? RETURNING {JOB_COLUMNS}",
                (json.dumps(merged), channel_id, job_id),
            ).fetchone()
            c.executemany(
                "INSERT OR IGNORE INTO job_messages (message_id, job_id) VALUES (?, ?)",
                [(m, job_id) for m in ids],
            )
            return _job(row)

    def job_for_message(self, message_id: int) -> Job | None:
        """The job whose results are in this message, if any."""
        row = self._one(
            f"SELECT {JOB_COLUMNS} FROM job_messages JOIN jobs ON jobs.id = job_messages.job_id"
            " WHERE job_messages.message_id = ?",
            (message_id,),
        )
        return None if row is None else _job(row)

    def list_jobs(
        self, user_id: int | None, state: str | None, limit: int, guild_id: int | None = None
    ) -> list[Job]:
        """Newest jobs first, filtered by user, state and guild."""
        where, params = [], []
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if guild_id is not None:
            where.append("guild_id = ?")
            params.append(guild_id)
        sql = f"SELECT {JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        return [_job(r) for r in self.conn.execute(sql, (*params, max(1, int(limit))))]

    def backend_cost(self, job_id: int) -> tuple[str, int | None] | None:
        """(status, images billed) recorded for the job, or None while it is open."""
        row = self._one(
            "SELECT status, images_billed FROM backend_costs WHERE job_id = ?", (job_id,)
        )
        return None if row is None else (row["status"], row["images_billed"])

    # --- restart, retention, privacy --------------------------------------------------------

    def reconcile(self, now: datetime | None) -> ReconcileReport:
        """Settle every open job by rule after a restart (see the module docs in __init__)."""
        now = utc(now)
        failed, unknown, resumable, elsewhere = [], [], [], []
        alive: dict[str, bool] = {}
        with self._write() as c:
            rows = c.execute(
                f"SELECT {JOB_COLUMNS}, owner FROM jobs WHERE state IN {_OPEN} ORDER BY id"
            ).fetchall()
            for row in rows:
                owner = row["owner"]
                if owner is not None and owner == self.owner:
                    continue  # this process's own job, running now
                if owner is not None:
                    if owner not in alive:
                        alive[owner] = owner_alive(self._owners, owner)
                    if alive[owner]:  # another process on this file is still running it
                        elsewhere.append(row["id"])
                        continue
                if row["state"] == "queued":
                    self._close(
                        c,
                        row["id"],
                        "failed",
                        delivered=0,
                        withheld=0,
                        billed=0,
                        error="The bot restarted before this job started; nothing was charged.",
                        now=now,
                    )
                    failed.append(row["id"])
                elif row["backend"] in RESUMABLE_BACKENDS and row["backend_ref"]:
                    # This process resumes it now: claim it, so another start leaves it alone.
                    c.execute("UPDATE jobs SET owner = ? WHERE id = ?", (self.owner, row["id"]))
                    resumable.append(_job(row))
                else:
                    self._close(
                        c,
                        row["id"],
                        "unknown",
                        delivered=0,
                        withheld=0,
                        billed=None,
                        error=(
                            "The bot restarted while this job was running; it may have run at"
                            " the backend, so it was not resent and nothing was charged."
                        ),
                        now=now,
                    )
                    unknown.append(row["id"])
        sweep_stale(self._owners, keep=self.owner)
        return ReconcileReport(
            tuple(failed), tuple(unknown), tuple(resumable), elsewhere=tuple(elsewhere)
        )

    def sweep_inputs(self, now: datetime | None) -> int:
        """Delete stored inputs unused for retention_days (by file age and by job age)."""
        now = utc(now)
        cutoff = now - timedelta(days=self.defaults.retention_days)
        keep = {
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT job_inputs.key FROM job_inputs JOIN jobs ON jobs.id = job_id"
                f" WHERE jobs.created_at >= ? OR jobs.state IN {_OPEN}",
                (iso(cutoff),),
            )
        }
        deleted = 0
        for key, mtime in list(self.inputs.keys_sync()):
            if key not in keep and mtime < cutoff.timestamp():
                deleted += self.inputs.delete_sync(key)
        return deleted

    def forget(self, user_id: int) -> ForgetReport:
        """Delete the user's inputs and personal fields; anonymous counts stay in the books."""
        if user_id == ANON_USER_ID:
            raise InvalidRequest("That id is the anonymous user; there is nothing to forget.")
        with self._write() as c:
            rows = c.execute(
                "SELECT id, request FROM jobs WHERE user_id = ?", (user_id,)
            ).fetchall()
            ids = [r["id"] for r in rows]
            keys: set[str] = set()
            for r in rows:
                keys.update(
                    k[0]
                    for k in c.execute("SELECT key FROM job_inputs WHERE job_id = ?", (r["id"],))
                )
                c.execute("DELETE FROM job_inputs WHERE job_id = ?", (r["id"],))
                c.execute("DELETE FROM job_messages WHERE job_id = ?", (r["id"],))
                request = {
                    k: v for k, v in json.loads(r["request"]).items() if "prompt" not in k.lower()
                }
                c.execute(
                    "UPDATE jobs SET user_id = ?, request = ?, input_key = NULL,"
                    " style_ref_keys = '[]', message_ids = '[]', interaction_id = NULL,"
                    " request_message_id = NULL WHERE id = ?",
                    (ANON_USER_ID, json.dumps(request, sort_keys=True), r["id"]),
                )
            ledger = c.execute(
                "UPDATE quota_ledger SET user_id = ? WHERE user_id = ?", (ANON_USER_ID, user_id)
            ).rowcount
            shared = {
                k
                for k in keys
                if self._one("SELECT 1 FROM job_inputs WHERE key = ? LIMIT 1", (k,)) is not None
            }
        deleted = sum(self.inputs.delete_sync(k) for k in sorted(keys - shared))
        return ForgetReport(jobs=len(ids), ledger_rows=ledger, inputs_deleted=deleted)

    # --- checks -----------------------------------------------------------------------------

    def ledger_balance(self, job_id: int) -> LedgerBalance:
        """Sums of the job's reserve, settle and refund rows."""
        sums = dict.fromkeys(("reserve", "settle", "refund"), 0)
        for row in self.conn.execute(
            "SELECT kind, sum(amount) FROM quota_ledger WHERE job_id = ? GROUP BY kind", (job_id,)
        ):
            sums[row[0]] = row[1]
        return LedgerBalance(job_id, sums["reserve"], sums["settle"], sums["refund"])

    def check_books(self) -> list[str]:
        """Every inconsistency between jobs and the ledger; an empty list means the books balance."""
        problems = []
        for row in self.conn.execute(
            "SELECT j.id, j.state, j.images_reserved,"
            " coalesce(sum(CASE l.kind WHEN 'reserve' THEN l.amount END), 0) AS r,"
            " coalesce(sum(CASE l.kind WHEN 'settle' THEN l.amount END), 0) AS s,"
            " coalesce(sum(CASE l.kind WHEN 'refund' THEN l.amount END), 0) AS f,"
            " count(CASE l.kind WHEN 'settle' THEN 1 END) AS settles"
            " FROM jobs j LEFT JOIN quota_ledger l ON l.job_id = j.id GROUP BY j.id"
        ):
            jid, state, reserved, r, s, f, settles = tuple(row)
            if r != reserved:
                problems.append(f"job {jid}: reserved {reserved} but the ledger reserved {r}")
            if state in ("queued", "running"):
                if s or f or settles:
                    problems.append(f"job {jid} is {state} but was settled or refunded")
            elif settles != 1 or r != s + f:
                problems.append(
                    f"job {jid} is {state}: reserved {r}, charged {s}, refunded {f}"
                    f" in {settles} settlements"
                )
        # The hourly summary must equal the ledger it summarises.
        mismatch = self._one(
            "WITH a AS (SELECT user_id, scope, substr(period_ts, 1, 13) AS hour,"
            " sum(CASE kind WHEN 'reserve' THEN amount ELSE 0 END),"
            " sum(CASE kind WHEN 'settle' THEN amount ELSE 0 END),"
            " sum(CASE kind WHEN 'refund' THEN amount ELSE 0 END),"
            " sum(CASE kind WHEN 'grant' THEN amount ELSE 0 END),"
            " sum(CASE kind WHEN 'reset' THEN amount ELSE 0 END)"
            " FROM quota_ledger GROUP BY 1, 2, 3),"
            " b AS (SELECT user_id, scope, hour, reserved, settled, refunded, granted, reset"
            " FROM quota_usage WHERE reserved OR settled OR refunded OR granted OR reset)"
            " SELECT (SELECT count(*) FROM (SELECT * FROM a EXCEPT SELECT * FROM b))"
            " + (SELECT count(*) FROM (SELECT * FROM b EXCEPT SELECT * FROM a))"
        )
        if mismatch is not None and mismatch[0]:
            problems.append(f"quota_usage differs from the ledger in {mismatch[0]} hours")
        return problems

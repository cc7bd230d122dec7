"""A job's rows: create it with its reservation, mark it running, close it, find it.

A job is created and its images reserved by ONE statement (the jobs_reserve trigger writes the
ledger row), and closed by ONE statement (jobs_close settles and refunds): the books cannot be
half-written, and a closed job never changes state again (jobs_final).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.errors import InvalidRequest
from bot.store.db import Conn, StoreDb
from bot.store.errors import JobNotFound
from bot.store.inputs import check_key
from bot.store.models import (
    JOB_KINDS,
    Job,
    NewJob,
    PostedRecord,
    check_count,
    check_fail_state,
)
from bot.store.periods import iso, utc
from bot.store.quota_rules import QuotaRules, scope_of
from bot.store.rows import JOB_COLUMNS, OPEN_SQL, job_from_row

# Column values of a job that was just created (before anything happened to it).
_NEW_JOB_COLUMNS: dict[str, Any] = {
    "state": "queued",
    "started_at": None,
    "finished_at": None,
    "backend_ref": None,
    "images_delivered": 0,
    "images_withheld": 0,
    "message_ids": "[]",
    "message_channel_id": None,
    "error": None,
}


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


class Jobs:
    """Jobs on the store's connection (writer thread only); `owner` is stamped on new jobs."""

    def __init__(self, db: StoreDb, rules: QuotaRules, owner: str | None) -> None:
        self.db = db
        self.rules = rules
        self.owner = owner

    # --- create ---------------------------------------------------------------------------------

    def submit_job(self, new: NewJob, now: datetime | None) -> Job:
        """Create the job (queued) and reserve its images in one statement, or refuse."""
        check_count(new.images, "The number of images", 1)
        if new.kind not in JOB_KINDS:
            kinds = " or ".join(JOB_KINDS)
            raise InvalidRequest(f"A job's kind must be {kinds}, not {new.kind!r}.")
        if new.input_key:
            check_key(new.input_key)
        if new.mask_key:
            check_key(new.mask_key)
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
        now = utc(now)
        columns: dict[str, Any] = {
            **_NEW_JOB_COLUMNS,
            "interaction_id": interaction_id,
            "guild_id": guild_id,
            "scope": scope_of(guild_id),
            "channel_id": channel_id,
            "user_id": user_id,
            "kind": new.kind,
            "parent_job_id": parent_job_id,
            "request": json.dumps(dict(new.request), sort_keys=True, default=str),
            "input_key": new.input_key,
            "style_ref_keys": json.dumps(list(new.style_ref_keys)),
            "mask_key": new.mask_key,
            "created_at": iso(now),
            "backend": new.backend,
            "images_requested": new.images,
            "images_reserved": new.images,
            "request_message_id": request_message_id,
            "owner": self.owner,
        }
        roles = [int(r) for r in new.role_ids] if guild_id is not None else []
        with self.db.write() as c:
            job_id = self.rules.reserve(c, columns, roles, now)
            if job_id is None:  # a replay, a block or the quota: find out which
                ids = {"interaction_id": interaction_id, "guild_id": guild_id, "user_id": user_id}
                return self._not_reserved(dataclasses.replace(new, **ids), now)
        # The row is exactly what was inserted: build it here instead of reading it back.
        columns["id"] = job_id
        return job_from_row(columns)

    def _not_reserved(self, new: NewJob, now: datetime) -> Job:
        """Why the reserving insert wrote nothing: the replayed job, or the refusal to raise."""
        if new.interaction_id is not None:
            row = self.db.one(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE interaction_id = ?", (new.interaction_id,)
            )
            if row is not None:  # a replayed interaction: the same job, no second reservation
                return dataclasses.replace(job_from_row(row), replayed=True)
        raise self.rules.refusal(new, now)

    # --- find -----------------------------------------------------------------------------------

    def find_job(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        row = self.db.one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else job_from_row(row)

    def get_job(self, job_id: int) -> Job:
        """The job with this id, or JobNotFound."""
        job = self.find_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def job_for_message(self, message_id: int) -> Job | None:
        """The job whose results are in this message, if any."""
        row = self.db.one(
            f"SELECT {JOB_COLUMNS} FROM job_messages JOIN jobs ON jobs.id = job_messages.job_id"
            " WHERE job_messages.message_id = ?",
            (message_id,),
        )
        return None if row is None else job_from_row(row)

    def list_jobs(
        self, user_id: int | None, state: str | None, limit: int, guild_id: int | None = None
    ) -> list[Job]:
        """Newest jobs first, filtered by user, state and guild."""
        where, params = [], []
        for column, value in (("user_id", user_id), ("state", state), ("guild_id", guild_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        return [job_from_row(r) for r in self.db.conn.execute(sql, (*params, max(1, int(limit))))]

    def backend_cost(self, job_id: int) -> tuple[str, int | None] | None:
        """(status, images billed) recorded for the job, or None while it is open."""
        row = self.db.one(
            "SELECT status, images_billed FROM backend_costs WHERE job_id = ?", (job_id,)
        )
        return None if row is None else (row["status"], row["images_billed"])

    # --- while open -----------------------------------------------------------------------------

    def mark_running(self, job_id: int, backend_ref: str | None, now: datetime | None) -> Job:
        """queued -> running; a job already final (e.g. cancelled) is returned unchanged."""
        with self.db.write() as c:
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
            return job_from_row(row) if row is not None else self.get_job(job_id)

    def set_backend_ref(self, job_id: int, ref: str) -> Job:
        """Save the backend's request or task id while the job is open (for resuming)."""
        with self.db.write() as c:
            row = c.execute(
                f"UPDATE jobs SET backend_ref = ? WHERE id = ? AND state IN {OPEN_SQL}"
                f" RETURNING {JOB_COLUMNS}",
                (ref, job_id),
            ).fetchone()
            return job_from_row(row) if row is not None else self.get_job(job_id)

    def claim(self, c: Conn, job_id: int, state: str, was: str | None) -> Job | None:
        """Make this process the owner of an open job still in `state` and owned by `was`."""
        # `owner IS ?` is SQLite's; `owner IS NULL` and `owner = ?` are everyone's.
        same_owner = "owner IS NULL" if was is None else "owner = ?"
        row = c.execute(
            f"UPDATE jobs SET owner = ? WHERE id = ? AND state = ? AND {same_owner}"
            f" RETURNING {JOB_COLUMNS}",
            (self.owner, job_id, state, *(() if was is None else (was,))),
        ).fetchone()
        return None if row is None else job_from_row(row)

    # --- close ----------------------------------------------------------------------------------

    def close(
        self,
        c: Conn,
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
        # One statement; the jobs_close trigger writes the settle/refund rows.
        row = c.execute(
            "UPDATE jobs SET state = ?, finished_at = ?, images_delivered = ?,"
            " images_withheld = ?, error = ?, images_billed = ?"
            f" WHERE id = ? AND state IN {OPEN_SQL} RETURNING {JOB_COLUMNS}",
            (state, iso(now), delivered, withheld, error, billed, job_id),
        ).fetchone()
        return None if row is None else job_from_row(row)

    def settle(
        self, job_id: int, delivered: int, withheld: int, billed: int | None, now: datetime | None
    ) -> Job:
        """Charge the delivered images, refund the rest (withheld ones too); replays do nothing."""
        check_count(delivered, "Delivered images")
        check_count(withheld, "Withheld images")
        if billed is not None:
            check_count(billed, "Billed images")
        with self.db.write() as c:
            job = self.close(
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
        check_fail_state(state)
        if billed is not None:
            check_count(billed, "Billed images")
        with self.db.write() as c:
            job = self.close(
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

    # --- posted results -------------------------------------------------------------------------

    def _add_messages(
        self, c: Conn, job: Job, message_ids: Sequence[int], channel_id: int | None
    ) -> Job:
        ids = [int(m) for m in message_ids]
        merged = list(job.message_ids) + [m for m in ids if m not in job.message_ids]
        row = c.execute(
            "UPDATE jobs SET message_ids = ?, message_channel_id = coalesce(?, message_channel_id)"
            f" WHERE id = ? RETURNING {JOB_COLUMNS}",
            (json.dumps(merged), channel_id, job.id),
        ).fetchone()
        c.executemany(
            "INSERT INTO job_messages (message_id, job_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(m, job.id) for m in ids],
        )
        return job_from_row(row)

    def record_messages(
        self, job_id: int, message_ids: Sequence[int], channel_id: int | None
    ) -> Job:
        """Remember the result messages (for rerolls from a reaction); replays add nothing."""
        with self.db.write() as c:
            return self._add_messages(c, self.get_job(job_id), message_ids, channel_id)

    def settle_posted_in(self, c: Conn, job: Job, record: PostedRecord, now: datetime) -> Job:
        """Inside a transaction: record the posted messages and settle `job` as `record` says."""
        self._add_messages(c, job, record.message_ids, record.channel_id)
        closed = self.close(
            c,
            job.id,
            "delivered",
            delivered=record.images,
            withheld=record.withheld,
            billed=record.billed,
            error=None,
            now=now,
        )
        assert closed is not None, "settle_posted_in is only called on an open job"
        return closed

    def settle_posted(self, record: PostedRecord, now: datetime | None) -> Job:
        """Record the posted messages and settle delivered in ONE transaction; a final job is
        returned unchanged (a replay, or a reconcile that settled it first)."""
        with self.db.write() as c:
            job = self.get_job(record.job_id)
            if job.final:
                return job
            return self.settle_posted_in(c, job, record, utc(now))

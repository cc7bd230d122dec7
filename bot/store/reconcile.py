"""Reconcile: close or claim the open jobs of processes that are gone ("orphans"), by rule.

An open job belongs to the process whose Store created (or claimed) it; bot/store/owners.py (lock
files, SQLite) or bot/store/leases.py (leases, PostgreSQL, any machine) tells whether that process
still runs. Jobs of this process and of live owners are left alone. A
Discord job has a channel; a terminal job (`remixbot remix`, user `cli`) has none. Every process
reconciles the terminal orphans when it opens the store; only the bot (`claim_discord_jobs`)
touches Discord jobs, because only it can run them again or tell their members. The rules, first
match wins:

| orphan                                        | Discord job (bot)            | terminal job          |
|-----------------------------------------------|------------------------------|-----------------------|
| results posted (journal file or message ids)  | settled delivered, charged   | same                  |
| queued                                        | claimed, in `requeue`        | failed, refunded      |
| running, task id on a resumable backend       | claimed, in `resumable`      | unknown, refunded     |
| running otherwise                             | unknown, refunded, in        | unknown, refunded     |
|                                               | `closed_unknown`             |                       |

A posted result is never resumed (that would post it twice) and never refunded. Journal files of
jobs already final are deleted; those of live owners' jobs are left for their owner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.store.db import Conn, StoreDb
from bot.store.jobs import Jobs
from bot.store.journal import PostedJournal
from bot.store.models import Job, PostedRecord, ReconcileReport
from bot.store.periods import utc
from bot.store.rows import JOB_COLUMNS, OPEN_SQL, job_from_row

NOT_STARTED = "The process running this job stopped before it started; nothing was charged."
MAY_HAVE_RUN = (
    "The process running this job stopped while it was at the backend; it may have run there,"
    " so it was not resent and nothing was charged."
)


@dataclass
class _Sorted:
    """Open jobs sorted by who may touch them, and the journal as read after sorting."""

    orphans: list[tuple[Job, str | None]] = field(default_factory=list)  # (job, its owner)
    elsewhere: list[int] = field(default_factory=list)
    for_bot: list[int] = field(default_factory=list)
    records: dict[int, PostedRecord] = field(default_factory=dict)
    stale: list[int] = field(default_factory=list)  # journal files of final jobs

    @property
    def work(self) -> bool:
        """True when reconcile has something to write or delete."""
        return bool(self.orphans or self.stale)


class Owners(Protocol):
    """Who else runs jobs on these books: lock files (SQLite) or leases (PostgreSQL)."""

    def alive(self, token: str) -> bool:
        """True while the process holding `token` runs (or its lease has not run out)."""

    def sweep(self, keep: str | None) -> int:
        """Forget the owners that are gone, except `keep`; how many."""


class Reconciler:
    """Reconciles orphans on the store's connection (writer thread only)."""

    def __init__(
        self, db: StoreDb, jobs: Jobs, journal: PostedJournal, owners: Owners, owner: str | None
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.journal = journal
        self.owners = owners
        self.owner = owner

    def reconcile(
        self, now: datetime | None, resumable: Collection[str], claim_discord_jobs: bool
    ) -> ReconcileReport:
        """Apply the rules above to every orphan this caller may touch; see the module docs."""
        now = utc(now)
        # A read first: the periodic check of a running bot usually finds nothing to do, and then
        # takes no write lock at all (the open jobs are found through a partial index).
        found = self._sort(claim_discord_jobs)
        if not found.work:
            self.owners.sweep(keep=self.owner)
            return ReconcileReport(elsewhere=tuple(found.elsewhere), for_bot=tuple(found.for_bot))
        failed: list[int] = []
        unknown: list[int] = []
        delivered: list[int] = []
        resumed: list[Job] = []
        requeue: list[Job] = []
        closed_unknown: list[Job] = []
        with self.db.write() as c:
            # One reconcile at a time across processes (SQLite's write lock already is one).
            self.db.take_turns("reconcile")
            # Sorted again under the lock: another process may have acted in between.
            found = self._sort(claim_discord_jobs)
            for job, was in found.orphans:
                discord = job.channel_id is not None
                record = found.records.get(job.id) or _posted_without_journal(job)
                if record is not None:
                    self.jobs.settle_posted_in(c, job, record, now)
                    delivered.append(job.id)
                elif job.state == "queued" and discord:
                    self._claim(c, job, was, requeue)
                elif job.state == "queued":
                    self._close(c, job, "failed", NOT_STARTED, 0, now)
                    failed.append(job.id)
                elif discord and job.backend in resumable and job.backend_ref:
                    self._claim(c, job, was, resumed)
                else:
                    closed = self._close(c, job, "unknown", MAY_HAVE_RUN, None, now)
                    unknown.append(job.id)
                    if discord:
                        closed_unknown.append(closed)
        # After the commit: the books now hold what these files said (a file that cannot be
        # deleted now is found stale, and deleted, by a later reconcile).
        for job_id in (*delivered, *found.stale):
            with contextlib.suppress(OSError):
                self.journal.delete_sync(job_id)
        self.owners.sweep(keep=self.owner)
        return ReconcileReport(
            failed=tuple(failed),
            unknown=tuple(unknown),
            resumable=tuple(resumed),
            elsewhere=tuple(found.elsewhere),
            requeue=tuple(requeue),
            closed_unknown=tuple(closed_unknown),
            delivered=tuple(delivered),
            for_bot=tuple(found.for_bot),
        )

    def _sort(self, claim_discord_jobs: bool) -> _Sorted:
        """Who may touch each open job; then the journal (read after the owners were found gone,
        so a record written by a process just before it died is seen)."""
        out = _Sorted()
        alive: dict[str, bool] = {}
        rows = self.db.conn.execute(
            f"SELECT {JOB_COLUMNS}, owner FROM jobs WHERE state IN {OPEN_SQL} ORDER BY id"
        ).fetchall()
        open_ids = set()
        for row in rows:
            open_ids.add(row["id"])
            owner = row["owner"]
            if owner is not None and owner == self.owner:
                continue  # this process's own job, running now
            if owner is not None:
                if owner not in alive:
                    alive[owner] = self.owners.alive(owner)
                if alive[owner]:  # another process on this file is still running it
                    out.elsewhere.append(row["id"])
                    continue
            if row["channel_id"] is not None and not claim_discord_jobs:
                out.for_bot.append(row["id"])
                continue
            out.orphans.append((job_from_row(row), owner))
        out.records = self.journal.read_all_sync()
        closed = [job_id for job_id in out.records if job_id not in open_ids]
        if closed:
            marks = ",".join("?" * len(closed))
            out.stale = [
                r[0]
                for r in self.db.conn.execute(
                    f"SELECT id FROM jobs WHERE id IN ({marks}) AND state NOT IN {OPEN_SQL}",
                    closed,
                )
            ]
        return out

    def _claim(self, c: Conn, job: Job, was: str | None, into: list[Job]) -> None:
        claimed = self.jobs.claim(c, job.id, job.state, was)
        if claimed is not None:
            into.append(claimed)

    def _close(
        self,
        c: Conn,
        job: Job,
        state: str,
        error: str,
        billed: int | None,
        now: datetime,
    ) -> Job:
        closed = self.jobs.close(
            c, job.id, state, delivered=0, withheld=0, billed=billed, error=error, now=now
        )
        assert closed is not None, "an orphan is open under the write lock"
        return closed


def _posted_without_journal(job: Job) -> PostedRecord | None:
    """A record for a job whose messages were recorded but that was never settled.

    Only code from before the journal records messages without one (it settled just after);
    the count of posted images is not known then, so the reserved images are charged, the
    member having their results, and the backend's bill is recorded as unknown.
    """
    if not job.message_ids:
        return None
    return PostedRecord(
        job_id=job.id,
        message_ids=job.message_ids,
        channel_id=job.message_channel_id,
        images=job.images_reserved,
    )

"""Upkeep of the books: the retention sweep of stored inputs and kept results, forgetting a user,
and the checks that jobs and the ledger agree (`ledger_balance`, `check_books`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from bot.errors import InvalidRequest
from bot.store.db import StoreDb
from bot.store.inputs import InputStore
from bot.store.models import ANON_USER_ID, OPEN_STATES, ForgetReport, LedgerBalance, QuotaDefaults
from bot.store.periods import iso, utc
from bot.store.rows import OPEN_SQL


class Maintenance:
    """Retention, privacy and consistency checks on the store's connection (writer thread only)."""

    def __init__(
        self,
        db: StoreDb,
        inputs: InputStore,
        defaults: QuotaDefaults,
        results: InputStore | None = None,
    ) -> None:
        self.db = db
        self.inputs = inputs
        self.defaults = defaults
        self.results = results  # posted result images (job_results), kept like inputs

    def sweep_inputs(self, now: datetime | None) -> int:
        """Delete stored inputs, and kept result images, unused for retention_days (by file age
        and by job age)."""
        deleted = self._sweep(self.inputs, "job_inputs", now)
        if self.results is not None:
            deleted += self._sweep(self.results, "job_results", now)
        return deleted

    def _sweep(self, files: InputStore, table: str, now: datetime | None) -> int:
        """Delete the files of `files` that no recent or open job lists in `table`."""
        cutoff = utc(now) - timedelta(days=self.defaults.retention_days)
        keep = {
            r[0]
            for r in self.db.conn.execute(
                f"SELECT DISTINCT {table}.key FROM {table} JOIN jobs ON jobs.id = job_id"
                f" WHERE jobs.created_at >= ? OR jobs.state IN {OPEN_SQL}",
                (iso(cutoff),),
            )
        }
        deleted = 0
        for key, mtime in list(files.keys_sync()):
            if key not in keep and mtime < cutoff.timestamp():
                deleted += files.delete_sync(key)
        return deleted

    def forget(self, user_id: int) -> ForgetReport:
        """Delete the user's inputs and personal fields; anonymous counts stay in the books."""
        if user_id == ANON_USER_ID:
            raise InvalidRequest("That id is the anonymous user; there is nothing to forget.")
        with self.db.write() as c:
            rows = c.execute(
                "SELECT id, request FROM jobs WHERE user_id = ?", (user_id,)
            ).fetchall()
            ids = [r["id"] for r in rows]
            keys: set[str] = set()
            results: set[str] = set()
            for r in rows:
                results.update(
                    k[0]
                    for k in c.execute("SELECT key FROM job_results WHERE job_id = ?", (r["id"],))
                )
                c.execute("DELETE FROM job_results WHERE job_id = ?", (r["id"],))
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
                    "UPDATE jobs SET user_id = ?, request = ?, input_key = NULL, mask_key = NULL,"
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
                if self.db.one("SELECT 1 FROM job_inputs WHERE key = ? LIMIT 1", (k,)) is not None
            }
            shared_results = {
                k
                for k in results
                if self.db.one("SELECT 1 FROM job_results WHERE key = ? LIMIT 1", (k,)) is not None
            }
        deleted = sum(self.inputs.delete_sync(k) for k in sorted(keys - shared))
        if self.results is not None:
            deleted += sum(self.results.delete_sync(k) for k in sorted(results - shared_results))
        return ForgetReport(jobs=len(ids), ledger_rows=ledger, inputs_deleted=deleted)

    # --- checks -----------------------------------------------------------------------------

    def ledger_balance(self, job_id: int) -> LedgerBalance:
        """Sums of the job's reserve, settle and refund rows."""
        sums = dict.fromkeys(("reserve", "settle", "refund"), 0)
        for row in self.db.conn.execute(
            "SELECT kind, sum(amount) FROM quota_ledger WHERE job_id = ? GROUP BY kind", (job_id,)
        ):
            sums[row[0]] = row[1]
        return LedgerBalance(job_id, sums["reserve"], sums["settle"], sums["refund"])

    def check_books(self) -> list[str]:
        """Every inconsistency between jobs and the ledger; an empty list means the books balance."""
        problems = []
        for row in self.db.conn.execute(
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
            if state in OPEN_STATES:
                if s or f or settles:
                    problems.append(f"job {jid} is {state} but was settled or refunded")
            elif settles != 1 or r != s + f:
                problems.append(
                    f"job {jid} is {state}: reserved {r}, charged {s}, refunded {f}"
                    f" in {settles} settlements"
                )
        # The hourly summary must equal the ledger it summarises.
        mismatch = self.db.one(
            "WITH a AS (SELECT user_id, scope, substr(period_ts, 1, 13) AS hour,"
            " sum(CASE kind WHEN 'reserve' THEN amount ELSE 0 END),"
            " sum(CASE kind WHEN 'settle' THEN amount ELSE 0 END),"
            " sum(CASE kind WHEN 'refund' THEN amount ELSE 0 END),"
            " sum(CASE kind WHEN 'grant' THEN amount ELSE 0 END),"
            " sum(CASE kind WHEN 'reset' THEN amount ELSE 0 END)"
            " FROM quota_ledger GROUP BY 1, 2, 3),"
            " b AS (SELECT user_id, scope, hour, reserved, settled, refunded, granted, reset"
            " FROM quota_usage WHERE reserved <> 0 OR settled <> 0 OR refunded <> 0"
            " OR granted <> 0 OR reset <> 0)"
            " SELECT (SELECT count(*) FROM (SELECT * FROM a EXCEPT SELECT * FROM b) AS ab)"
            " + (SELECT count(*) FROM (SELECT * FROM b EXCEPT SELECT * FROM a) AS ba)"
        )
        if mismatch is not None and mismatch[0]:
            problems.append(f"quota_usage differs from the ledger in {mismatch[0]} hours")
        return problems

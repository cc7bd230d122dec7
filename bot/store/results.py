"""The posted result images of each job, kept for the retention period: files content-addressed
under results/ (the input store's shape), listed per job in `job_results`.

They let /show post a job again, Vary take a result as its input, and the DM control send the
images, without a Discord CDN link. The retention sweep and `forget` delete them
(maintenance.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.store.db import StoreDb
from bot.store.inputs import check_key


class Results:
    """The `job_results` rows (writer thread only)."""

    def __init__(self, db: StoreDb) -> None:
        self.db = db

    def record(self, job_id: int, keys: Sequence[str]) -> None:
        """List the job's kept result images, in the order they were posted."""
        rows = [(int(job_id), n, check_key(k)) for n, k in enumerate(keys)]
        with self.db.write() as c:
            c.executemany(
                "INSERT INTO job_results VALUES (?, ?, ?)"
                " ON CONFLICT (job_id, position) DO UPDATE SET key = excluded.key",
                rows,
            )

    def keys(self, job_id: int) -> list[str]:
        """The job's kept result images, first posted first (empty when none were kept)."""
        return [
            r[0]
            for r in self.db.conn.execute(
                "SELECT key FROM job_results WHERE job_id = ? ORDER BY position", (int(job_id),)
            )
        ]

"""The posted journal: one small file per job whose results reached the channel, until settled.

Posting is the moment a member has their images; recording it in SQLite can still fail (another
process holds the write lock past the busy timeout) or never happen (the process dies). The
journal is written first, without SQLite, atomically (temp file, fsync, rename), so a posted
result is never taken for "not posted": `settle_posted` deletes the file after its commit, and
`reconcile` settles the jobs of processes that are gone from the files they left.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
from pathlib import Path

from bot.store.files import remove, write_atomic
from bot.store.models import PostedRecord

log = logging.getLogger(__name__)

_NAME = re.compile(r"^job-(\d+)\.json$")


class PostedJournal:
    """Files `<data_dir>/posted/job-<id>.json`; the `*_sync` methods are for worker threads."""

    def __init__(self, data_dir: Path | str) -> None:
        self.root = Path(data_dir) / "posted"

    def path(self, job_id: int) -> Path:
        """Where the record of job `job_id` lives."""
        return self.root / f"job-{int(job_id)}.json"

    def write_sync(self, record: PostedRecord) -> None:
        """Write (or replace) the job's record atomically and durably."""
        data = json.dumps(dataclasses.asdict(record), sort_keys=True).encode()
        write_atomic(self.path(record.job_id), data)

    def read_all_sync(self) -> dict[int, PostedRecord]:
        """Every record in the journal by job id; a file that does not parse is logged, kept."""
        if not self.root.is_dir():
            return {}
        records: dict[int, PostedRecord] = {}
        for entry in os.scandir(self.root):
            match = _NAME.match(entry.name)
            if match is None:
                continue
            try:
                data = json.loads(Path(entry.path).read_bytes())
                record = PostedRecord(**{**data, "message_ids": tuple(data["message_ids"])})
            except FileNotFoundError:  # settled and deleted while we looked
                continue
            except (OSError, ValueError, TypeError, KeyError):
                log.warning("posted journal: cannot read %s; left in place", entry.name)
                continue
            if record.job_id == int(match.group(1)):
                records[record.job_id] = record
        return records

    def delete_sync(self, job_id: int) -> bool:
        """Delete the job's record; True when there was one."""
        return remove(self.path(job_id))

    async def write(self, record: PostedRecord) -> None:
        """Write the record off the event loop."""
        await asyncio.to_thread(self.write_sync, record)

    async def delete(self, job_id: int) -> bool:
        """Delete the job's record off the event loop."""
        return await asyncio.to_thread(self.delete_sync, job_id)

"""An online, consistent copy of the SQLite database while the bot runs (SQLite's backup API).

The copy is made in one step (`pages=-1`): one read transaction sees one snapshot, and in WAL
mode the bot keeps writing meanwhile. A stepwise copy would restart each time the bot writes,
and might never finish on a busy bot. The copy is written to a temporary file beside the target,
checked (`PRAGMA integrity_check`), then renamed into place: a failed backup never leaves a
half-written file under the name asked for.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from bot.errors import InvalidRequest


@dataclass(frozen=True)
class BackupReport:
    """What was copied."""

    path: Path
    size: int  # bytes
    jobs: int


def dated_name(day: date) -> str:
    """The file name of a backup made on `day`: `remixbot-2026-12-06.sqlite3`."""
    return f"remixbot-{day.isoformat()}.sqlite3"


def backup_target(target: str, day: date) -> Path:
    """Where a backup to `target` goes: a folder gets a dated file inside it.

    A name ending in a slash is a folder even before it exists (`Path` would drop the slash and
    make it the backup file's own name).
    """
    path = Path(target).expanduser()
    if target.endswith(("/", os.sep)) or path.is_dir():
        return path / dated_name(day)
    return path


def backup_database(source: Path, target: Path, *, overwrite: bool = False) -> BackupReport:
    """Copy the database at `source` to `target` consistently (blocking)."""
    if not source.exists():
        raise InvalidRequest(f"There is no database at {source} to back up yet.")
    if target.is_dir():
        example = target / dated_name(date.today())
        raise InvalidRequest(f"{target} is a folder; give the backup a file name, e.g. {example}.")
    if target.exists() and not overwrite:
        raise InvalidRequest(f"{target} already exists; choose another file or pass --force.")
    if target.resolve() == source.resolve():
        raise InvalidRequest("The backup must go to another file than the database itself.")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)  # pages=-1: the whole database from one snapshot
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise InvalidRequest(f"The copy failed its integrity check ({check}); try again.")
            jobs = dst.execute("SELECT count(*) FROM jobs").fetchone()[0]
        finally:
            dst.close()
            src.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BackupReport(target, target.stat().st_size, jobs)

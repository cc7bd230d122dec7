"""Which process owns an open job (SQLite): a lock file each Store holds for as long as it is open.

reconcile() closes the jobs a dead process left open, and must leave alone the jobs of a process
still running on the same file (the bot starting while `remixbot remix` runs, or a second bot
started by mistake). Each Store holds an exclusive flock on `<db>.owners/<token>.lock`; the
kernel drops it when the process ends, however it ends (SIGKILL included), so "can I take the
lock?" answers "is the owner gone?" without trusting process ids, which are reused.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: every owner counts as gone, as before owners existed
    fcntl = None  # type: ignore[assignment]

_TOKEN = re.compile(r"^[0-9a-f]{16}$")


def owners_folder(db_path: Path) -> Path:
    """Where the lock files of the processes using `db_path` live."""
    return db_path.with_name(db_path.name + ".owners")


class OwnerLock:
    """This process's claim on the jobs its Store creates; `token` is stored on each job."""

    def __init__(self, folder: Path, token: str, fd: int) -> None:
        self.folder = folder
        self.token = token
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder: Path) -> OwnerLock | None:
        """Create and lock a fresh lock file; None where file locks are not available."""
        if fcntl is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(8)
        # Locked under a name no checker looks at, then renamed into place (the lock stays with
        # the file): a checker never finds this file unlocked and takes it for a dead owner's.
        staging = folder / f".{token}.new"
        fd = os.open(staging, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(staging, folder / f"{token}.lock")
        except BaseException:
            os.close(fd)
            staging.unlink(missing_ok=True)
            raise
        return cls(folder, token, fd)

    def release(self) -> None:
        """Drop the claim and delete the lock file (safe to call twice)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        (self.folder / f"{self.token}.lock").unlink(missing_ok=True)
        os.close(fd)  # closing drops the flock


def owner_alive(folder: Path, token: str) -> bool:
    """True while the process that holds `token` runs; a stale lock file is deleted."""
    if fcntl is None or not _TOKEN.match(token):
        return False
    path = folder / f"{token}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        path.unlink(missing_ok=True)  # its owner is gone: nobody needs the file
        return False
    finally:
        os.close(fd)


def sweep_stale(folder: Path, keep: str | None) -> int:
    """Delete the lock files of processes that are gone; how many."""
    if not folder.is_dir():
        return 0
    gone = 0
    for path in folder.glob("*.lock"):
        token = path.stem
        if token != keep and _TOKEN.match(token) and not owner_alive(folder, token):
            gone += 1
    return gone


class FileOwners:
    """The owners of jobs in one SQLite file, as reconcile asks about them: by their lock files.

    (PostgreSQL's owners are leases in the database, bot/store/leases.py, with the same two
    questions.)
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def alive(self, token: str) -> bool:
        """True while the process holding `token` runs."""
        return owner_alive(self.folder, token)

    def sweep(self, keep: str | None) -> int:
        """Forget the owners that are gone; how many."""
        return sweep_stale(self.folder, keep)

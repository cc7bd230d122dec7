"""File writes and deletes for the store's files (stored inputs, the posted journal)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o666) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one: a temp file
    beside it, fsync, then a rename over it. `mode` (less the umask) is the file's from its first
    byte, so a secret is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove(path: Path) -> bool:
    """Delete `path`; True when there was a file to delete."""
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False

"""Content-addressed image files under data_dir (sha256 keys): prepared inputs in inputs/, and
posted result images in results/ (the same shape, another folder)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from bot.store.files import remove, write_atomic

_KEY = re.compile(r"^[0-9a-f]{64}$")


def check_key(key: str) -> str:
    """Return `key` if it is a sha256 hex digest; anything else could escape the directory."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"An input key must be 64 lowercase hex digits, not {key!r}.")
    return key


class InputStore:
    """Files named by the sha256 of their bytes; the `*_sync` methods are for worker threads."""

    def __init__(self, data_dir: Path | str, folder: str = "inputs") -> None:
        self.root = Path(data_dir) / folder

    def path(self, key: str) -> Path:
        """Where the file for `key` lives (two-level fan-out keeps directories small)."""
        check_key(key)
        return self.root / key[:2] / key

    def put_sync(self, data: bytes) -> str:
        """Store `data` once and return its key; storing it again only refreshes its age."""
        key = hashlib.sha256(data).hexdigest()
        path = self.path(key)
        if path.exists():
            os.utime(path)  # the retention sweep measures age from the last use
            return key
        write_atomic(path, data)  # readers never see half a file
        return key

    def get_sync(self, key: str) -> bytes | None:
        """The stored bytes, or None when swept, forgotten or never stored."""
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists_sync(self, key: str) -> bool:
        """True when the file for `key` is present."""
        return self.path(key).exists()

    def delete_sync(self, key: str) -> bool:
        """Delete the file for `key`; True when something was deleted."""
        return remove(self.path(key))

    def keys_sync(self) -> Iterator[tuple[str, float]]:
        """Every stored key with its modification time."""
        if not self.root.is_dir():
            return
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                if _KEY.match(entry.name):
                    try:
                        yield entry.name, entry.stat().st_mtime
                    except FileNotFoundError:
                        continue

    async def put(self, data: bytes) -> str:
        """Store `data` (off the event loop) and return its key."""
        return await asyncio.to_thread(self.put_sync, data)

    async def get(self, key: str) -> bytes | None:
        """Read the bytes for `key` (off the event loop), or None."""
        return await asyncio.to_thread(self.get_sync, key)

    async def delete(self, key: str) -> bool:
        """Delete the file for `key` (off the event loop)."""
        return await asyncio.to_thread(self.delete_sync, key)

"""The shape of the application commands: a stable hash, and the file that remembers the last sync."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def shape_hash(payloads: list[dict[str, Any]]) -> str:
    """A SHA-256 of the command payloads, independent of key order and command order."""
    ordered = sorted(payloads, key=lambda c: (str(c.get("type", 1)), str(c.get("name", ""))))
    text = json.dumps(ordered, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class SyncState:
    """The JSON file (in the data directory) holding the hash of the last synced command shape."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, str]:
        """The stored hashes by scope; empty when missing or unreadable (then we sync again)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def write(self, scope: str, digest: str) -> None:
        """Record the hash for a scope atomically (write a temp file, then rename)."""
        data = self.read()
        data[scope] = digest
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".command-sync.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

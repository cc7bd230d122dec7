"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# One test per database for the tests that ask for `database` (tests/databases.py).
from tests.databases import database, postgres, postgres_server  # noqa: F401
from tests.fakeremix import FakeRemix, running_fake
from tests.remixworld import on_each_database  # noqa: F401


@pytest.fixture
async def fake() -> AsyncIterator[FakeRemix]:
    """The fake remix server on a free port of 127.0.0.1, for one test."""
    async with running_fake() as f:
        yield f


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder not made yet, the only remixbot settings in the environment (CLI tests)."""
    for name in list(os.environ):
        if name.startswith(("REMIXBOT_", "DISCORD_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "fresh" / "data"  # does not exist yet: the CLI creates it
    monkeypatch.setenv("REMIXBOT_DATA_DIR", str(data))
    monkeypatch.setenv("REMIXBOT_DEFAULT_LIMIT", "6")
    return data

"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator

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

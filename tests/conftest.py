"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakeremix import FakeRemix, running_fake


@pytest.fixture
async def fake() -> AsyncIterator[FakeRemix]:
    """The fake remix server on a free port of 127.0.0.1, for one test."""
    async with running_fake() as f:
        yield f

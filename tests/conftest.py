"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
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
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No remixbot or Discord settings from the environment the tests run in (CLI tests)."""
    for name in list(os.environ):
        if name.startswith(("REMIXBOT_", "DISCORD_")):
            monkeypatch.delenv(name)


@pytest.fixture
def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """`remixbot ARGS…` through bot.cli.main in this process: (exit code, stdout, stderr).

    Keyword arguments are environment variables for that one call (`REMIXBOT_BACKEND="demo"`).
    """
    from bot.cli import main

    def call(*args: str, **env: str) -> tuple[int, str, str]:
        with monkeypatch.context() as m:
            for key, value in env.items():
                m.setenv(key, value)
            capsys.readouterr()
            try:
                code = main(list(args))
            except SystemExit as exc:  # --help, --version
                code = int(exc.code or 0)
            out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_settings: None) -> Path:
    """A data folder not made yet, the only remixbot settings in the environment (CLI tests)."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "fresh" / "data"  # does not exist yet: the CLI creates it
    monkeypatch.setenv("REMIXBOT_DATA_DIR", str(data))
    monkeypatch.setenv("REMIXBOT_DEFAULT_LIMIT", "6")
    return data

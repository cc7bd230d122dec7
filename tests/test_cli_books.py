"""The admin commands work on books that exist: run where there are none (another folder, a
wrong REMIXBOT_DATA_DIR, an empty PostgreSQL database) they refuse in one sentence that names the
place and the setting, and make nothing; `remixbot db init` starts books on purpose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.databases import execute

# Every command that only reads or changes existing books, with arguments that would succeed.
ADMIN_COMMANDS = [
    ("quota", "block", "444", "--reason", "spam"),
    ("quota", "show", "444"),
    ("quota", "policies"),
    ("quota", "set-default", "9"),
    ("quota", "set-guild", "1", "5"),
    ("quota", "grant", "444", "2"),
    ("quota", "unblock", "444"),
    ("jobs", "list"),
    ("jobs", "show", "1"),
    ("stats",),
    ("forget", "444", "--yes"),
    ("forget", "444"),  # refused before it asks for confirmation
]
SQLITE_ONLY = [("backup", "copy.sqlite3"), ("db", "copy", "--to", "postgresql://u@h/db")]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_settings: None) -> Path:
    """Another folder, with no remixbot settings at all: REMIXBOT_DATA_DIR is its default."""
    folder = tmp_path / "somewhere-else"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return Path.cwd()


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("args", ADMIN_COMMANDS + SQLITE_ONLY, ids=" ".join)
def test_admin_commands_refuse_where_there_are_no_books(
    elsewhere: Path, run, args: tuple[str, ...]
) -> None:
    code, out, err = run(*args)
    assert (code, out) == (2, "")
    assert err == (
        f"remixbot: There are no books at {elsewhere / 'data' / 'remixbot.sqlite3'}; set"
        " REMIXBOT_DATA_DIR to the bot's data folder (now 'data', read from the folder this runs"
        " in), or run remixbot db init to start new books there.\n"
    )
    assert files_in(elsewhere) == []  # no data folder, no database, no lock folder

    code, out, _ = run(*args, "--json")
    assert code == 2
    assert json.loads(out)["kind"] == "books_missing"


def test_a_sqlite_url_is_named_when_it_points_nowhere(
    elsewhere: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMIXBOT_DATABASE_URL", "sqlite:///books/remixbot.sqlite3")
    code, _, err = run("quota", "policies")
    assert code == 2
    assert err == (
        f"remixbot: There are no books at {elsewhere / 'books' / 'remixbot.sqlite3'}; set"
        " REMIXBOT_DATABASE_URL to the bot's SQLite file, or run remixbot db init to start new"
        " books there.\n"
    )
    assert files_in(elsewhere) == []


def test_db_init_starts_books_the_admin_commands_then_use(elsewhere: Path, run) -> None:
    code, out, err = run("db", "init")
    assert code == 0, err
    books = elsewhere / "data" / "remixbot.sqlite3"
    assert out == f"Started new, empty books at {books}.\n"
    code, out, err = run("quota", "block", "444", "--reason", "spam")
    assert code == 0, err
    assert out.startswith("Blocked 444 everywhere")
    code, out, _ = run("db", "init")
    assert (code, out) == (0, f"The books at {books} are already there; nothing was started.\n")
    # Books with nothing in them are still books: stats says so rather than refusing.
    assert run("stats") == (0, "No finished jobs match.\n", "")


def test_an_empty_postgresql_database_is_not_books(
    postgres: str, elsewhere: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMIXBOT_DATABASE_URL", postgres)
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
    for args in ADMIN_COMMANDS:
        code, out, err = run(*args)
        assert (code, out) == (2, ""), args
        assert err.startswith("remixbot: There are no books at postgresql://"), err
        assert err.endswith(
            "; check REMIXBOT_DATABASE_URL, or run remixbot db init to start new books there.\n"
        )
        assert "\n" not in err.rstrip("\n")
    assert execute(postgres, tables) == [(0,)]  # nothing was made in it
    assert files_in(elsewhere) == []

    code, out, err = run("db", "init")
    assert (code, err) == (0, "")
    assert out.startswith("Started new, empty books at postgresql://")
    assert execute(postgres, tables)[0][0] > 0
    code, out, err = run("quota", "block", "444", "--reason", "spam")
    assert code == 0, err

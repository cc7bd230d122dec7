"""`remixbot quota|jobs|forget` on a fresh data directory: a few real subprocesses, the rest
through the same entry point in-process (each interpreter start costs ~0.8 s on 2 cores)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.store import Job, QuotaDefaults, Store
from tests.store_helpers import new_job

ROOT = Path(__file__).resolve().parents[1]


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REMIXBOT_", "DISCORD_"))}
    env.update(PYTHONPATH=str(ROOT), REMIXBOT_DATA_DIR=str(data_dir), REMIXBOT_DEFAULT_LIMIT="6")
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=data_dir.parents[1],  # no stray .env from the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def run_json(run):
    def call(*args: str) -> object:
        code, out, err = run(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    return call


@pytest.fixture
def books(data_dir: Path, run) -> Path:
    """The data folder with new, empty books in it (`remixbot db init`)."""
    code, out, err = run("db", "init")
    assert code == 0, err
    assert out.strip() == f"Started new, empty books at {data_dir / 'remixbot.sqlite3'}."
    return data_dir


def test_subprocess_on_a_fresh_database(data_dir: Path) -> None:
    # No books where REMIXBOT_DATA_DIR points: refused, and nothing is made there.
    shown = _cli(data_dir, "quota", "show", "cli")
    assert (shown.returncode, shown.stdout) == (2, "")
    assert shown.stderr == (
        f"remixbot: There are no books at {data_dir / 'remixbot.sqlite3'}; set"
        " REMIXBOT_DATA_DIR to the bot's data folder, or run remixbot db init to start new books"
        " there.\n"
    )
    assert not data_dir.parent.exists()
    started = _cli(data_dir, "db", "init")
    assert started.returncode == 0, started.stderr
    again = _cli(data_dir, "db", "init", "--json")
    assert json.loads(again.stdout) == {
        "created": False,
        "database": str(data_dir / "remixbot.sqlite3"),
    }
    shown = _cli(data_dir, "quota", "show", "cli")
    assert shown.returncode == 0, shown.stderr
    assert "User cli in direct messages: daily quota" in shown.stdout
    assert "remaining  6" in shown.stdout
    assert (data_dir / "remixbot.sqlite3").is_file()
    shown = _cli(data_dir, "quota", "set-default", "9", "--json")
    assert json.loads(shown.stdout) == {"default_limit": 9, "period": "daily"}
    missing = _cli(data_dir, "jobs", "show", "99")
    assert (missing.returncode, missing.stderr.strip()) == (2, "remixbot: There is no job 99.")
    bad_user = _cli(data_dir, "forget", "bob")
    assert bad_user.returncode == 2
    assert "a mention or the word cli, not 'bob'" in bad_user.stderr
    assert "Traceback" not in bad_user.stderr + missing.stderr


def test_quota_commands(books: Path, run, run_json) -> None:
    _json = run_json

    assert _json("quota", "set-default", "10", "--period", "weekly") == {
        "default_limit": 10,
        "period": "weekly",
    }
    _json("quota", "set-guild", "111", "12")
    _json("quota", "set-role", "111", "222", "40")
    _json("quota", "exempt", "111", "333")
    status = _json("quota", "show", "<@5>", "--guild", "111", "--role", "222")
    assert (status["limit"], status["period"], status["remaining"]) == (40, "weekly", 40)
    status = _json("quota", "show", "5", "--guild", "111", "--role", "333")
    assert (status["limit"], status["exempt"]) == (None, True)
    status = _json("quota", "grant", "5", "3", "--guild", "111")
    assert (status["limit"], status["granted"], status["remaining"]) == (12, 3, 15)
    assert _json("quota", "reset", "5", "--guild", "111")["used"] == 0

    code, out, _ = run("quota", "block", "5", "--reason", "spamming")
    assert code == 0 and "Blocked 5 everywhere (every server and direct messages): spamming" in out
    code, out, _ = run("quota", "block", "5", "--guild", "111", "--reason", "rude")
    assert code == 0 and "Blocked 5 in server 111 only: rude" in out
    policies = _json("quota", "policies")
    assert [
        (b["user_id"], b["guild_id"], b["everywhere"], b["reason"]) for b in policies["blocked"]
    ] == [(5, None, True, "spamming"), (5, 111, False, "rude")]
    assert policies["roles"] == [{"guild_id": 111, "role_id": 222, "limit": 40}]
    text = run("quota", "policies")[1]
    assert "exempt role" in text
    assert "Reason (5, everywhere): spamming" in text and "Reason (5, guild 111): rude" in text
    shown = _json("quota", "show", "5", "--guild", "111")
    assert (shown["blocked_everywhere"], shown["blocked_here"]) == ("spamming", "rude")
    assert _json("quota", "show", "5", "--guild", "222")["blocked_here"] is None
    # Without --guild the owner lifts the bot-wide block; the server's stays, and is named.
    unblocked = _json("quota", "unblock", "5")
    assert unblocked["was_blocked"] is True
    assert [b["guild_id"] for b in unblocked["still_blocked"]] == [111]
    code, out, _ = run("quota", "unblock", "5")
    assert out.strip() == "5 had no bot-wide block. Still blocked: guild 111."
    code, out, _ = run("quota", "unblock", "5", "--guild", "111")
    assert out.strip() == "Lifted 5's block in server 111."
    assert _json("quota", "policies")["blocked"] == []


def test_bad_arguments_are_one_sentence(books: Path, run) -> None:
    code, _, err = run("quota", "show", "bob")
    assert code == 2 and "a mention or the word cli, not 'bob'" in err
    code, _, err = run("quota", "set-guild", "1", "-3")
    assert code == 2 and "a limit must be a whole number of images" in err
    code, _, err = run("quota", "grant", "5", "0")
    assert code == 2 and "at least 1" in err
    code, _, err = run("quota", "block", "5", "--reason", "  ")
    assert (code, err.strip()) == (2, "remixbot: A block needs a reason; the user is shown it.")
    code, _, err = run("quota", "set-default", "none")
    assert code == 2 and "must be a whole number of images (0 or more), not 'none'" in err
    assert "or 'none'" not in err  # not suggested where it is refused
    code, out, _ = run("quota", "grant", "5", "2")
    assert code == 0 and out.startswith(
        "Granted 2 extra images to 5 for this period, in direct messages only"
        " (add --guild ID for a server)."
    )


def test_jobs_and_forget(books: Path, run, run_json) -> None:
    _json = run_json

    async def setup() -> tuple[Job, Job]:
        path = books / "remixbot.sqlite3"
        async with await Store.open(path, defaults=QuotaDefaults()) as s:
            key = await s.inputs.put(b"a stored input image")
            a = await s.submit_job(new_job(user_id=5, images=2, input_key=key))
            await s.settle(a.id, delivered=2, billed=2)
            b = await s.submit_job(new_job(user_id=0, guild_id=None, images=1))
            return a, b

    a, b = asyncio.run(setup())

    code, out, err = run("jobs", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "id",
        "state",
        "kind",
        "user",
        "guild",
        "images",
        "backend",
        "created",
    ]
    assert lines[1].split()[:5] == [str(b.id), "queued", "remix", "cli", "dm"]
    assert lines[2].split()[:6] == [str(a.id), "delivered", "remix", "5", "7", "2/2"]
    mine = _json("jobs", "list", "--user", "cli")
    assert [j["id"] for j in mine] == [b.id]
    assert [j["id"] for j in _json("jobs", "list", "--state", "delivered")] == [a.id]
    _, shown, _ = run("jobs", "show", str(a.id))
    assert "2 requested, 2 delivered, 0 withheld" in shown
    assert "prompt=a cat in a hat" in shown
    detail = _json("jobs", "show", str(a.id))
    assert detail["backend_cost"] == {"status": "billed", "images": 2}

    run("quota", "block", "5", "--guild", "7", "--reason", "spam")
    forgot = _json("forget", "5", "--yes")
    assert (forgot["jobs"], forgot["inputs_deleted"]) == (1, 1)
    # The block stays with its scope (a moderation record, not personal content).
    assert [(b["guild_id"], b["reason"]) for b in forgot["blocks_kept"]] == [(7, "spam")]
    assert "Their blocks stay: guild 7." in run("forget", "5", "--yes")[1]
    assert _json("jobs", "list", "--user", "5") == []
    detail = _json("jobs", "show", str(a.id))
    assert detail["user_id"] == -1 and "prompt" not in detail["request"]

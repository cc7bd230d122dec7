"""`remixbot check` against the fakes: one line per check, non-zero exit on any failure, and a
backend key judged by a request that the backend refuses for its content (nothing is charged)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sqlite3
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.cli.check import Checklist, _database
from bot.cli.sync import sync_once
from bot.client import RemixBot, apply_discord_endpoints
from bot.remix.keycheck import check_key
from bot.settings import load_settings
from bot.store import Store
from bot.store.inspect import inspect_database
from tests.databases import execute
from tests.fakediscord.server import FakeDiscord
from tests.fakeremix import running_fake
from tests.fakeremix.helpers import fake_env, fake_settings
from tests.remixworld import world_settings

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("ideogram", "ideogram-legacy", "ideogram-edit", "runware", "task-proxy")


async def remixbot(env: dict[str, str], *args: str, cwd: Path) -> tuple[int, str]:
    """Run `python -m bot ARGS` with exactly `env` (plus PATH); (exit code, stdout + stderr)."""
    full = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=full,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def world_env(d: FakeDiscord, r, data: Path, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {**fake_env(r), **d.env(), "REMIXBOT_DATA_DIR": str(data), **extra}


def line(output: str, name: str) -> str:
    """The checklist line of one check."""
    [found] = [ln for ln in output.splitlines() if ln[7:].startswith(name + ":")]
    return found


async def test_everything_in_order_passes_and_prints_intents_and_install_link(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        await sync_once(world_settings(d, r, data))  # as `remixbot sync` does
        code, out = await remixbot(world_env(d, r, data), "check", cwd=tmp_path)
        assert code == 0, out
        for name in ("settings", "data directory", "database", "discord", "backend key"):
            assert line(out, name).startswith("[ ok ]"), out
        assert line(out, "slash commands").startswith("[ ok ] slash commands: in sync (/")
        assert "intents: " in out and "(privileged: none)" in out
        assert f"install link: https://discord.com/oauth2/authorize?client_id={d.app_id}" in out
        assert "key accepted" in line(out, "backend key")
        assert out.rstrip().endswith("All checks passed.")
        # The key check sent one request, refused for its content: nothing ran or was billed.
        [probe] = r.api_requests()
        assert "image" not in probe.files
        assert d.token not in out and r.base_url  # the token never prints


async def test_a_fresh_install_passes_with_a_warning_that_the_start_syncs_the_commands(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        code, out = await remixbot(world_env(d, r, data), "check", cwd=tmp_path)
        assert code == 0, out
        commands = line(out, "slash commands")
        assert commands.startswith("[warn] slash commands: not in sync yet (missing on Discord: ")
        assert '"Remix this image" (message menu)' in commands and "/remix" in commands
        assert "the bot syncs them when it starts" in commands
        assert "does not exist yet; the first start (or `remixbot db init`) creates it" in line(
            out, "database"
        )
        assert out.rstrip().endswith("All checks passed; read the warnings: slash commands.")

        # What the warning promises: the bot's start (its setup hook) uploads them.
        settings = world_settings(d, r, data)
        apply_discord_endpoints(settings)
        async with RemixBot(settings) as bot:
            await bot.login(d.token)
        assert bot.last_sync == "global"
        code, out = await remixbot(world_env(d, r, data), "check", cwd=tmp_path)
        assert code == 0 and out.rstrip().endswith("All checks passed."), out
        assert '/remix, /remixadmin, /show, "Remix this image" (message menu))' in line(
            out, "slash commands"
        )

        # Discord's copy changed behind the last sync's back: the start would not upload them.
        d.commands[None] = [c for c in d.commands[None] if c["name"] != "quota"]
        code, out = await remixbot(world_env(d, r, data), "check", cwd=tmp_path)
        assert code == 1
        commands = line(out, "slash commands")
        assert commands.startswith(
            "[FAIL] slash commands: not in sync (missing on Discord: /quota)"
        )
        assert "run `remixbot sync`" in commands


async def test_wrong_key_and_bad_token_each_fail_their_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        env = world_env(d, r, data, REMIXBOT_API_KEY="wrong-key-123456")
        code, out = await remixbot(env, "check", cwd=tmp_path)
        assert code == 1
        assert line(out, "backend key").startswith(
            "[FAIL] backend key: ideogram refused the key (HTTP 401"
        )
        assert line(out, "slash commands").startswith("[warn] slash commands: not in sync yet")
        assert "wrong-key-123456" not in out
        assert "1 check(s) failed: backend key." in out

        env = world_env(d, r, data, DISCORD_TOKEN="not-the-token.abc.def")
        code, out = await remixbot(env, "check", cwd=tmp_path)
        assert code == 1
        assert line(out, "discord").startswith("[FAIL] discord: Discord rejected DISCORD_TOKEN")
        assert line(out, "slash commands").startswith("[skip]")
        assert "not-the-token" not in out


async def test_settings_that_do_not_parse_fail_and_skip_the_rest(tmp_path: Path) -> None:
    code, out = await remixbot(
        {"REMIXBOT_BACKEND": "dalle", "REMIXBOT_DATA_DIR": str(tmp_path / "d")},
        "check",
        cwd=tmp_path,
    )
    assert code == 1
    assert line(out, "settings").startswith("[FAIL] settings: REMIXBOT_BACKEND must be one of")
    assert line(out, "database").startswith("[skip]")
    # The last line sums up, as after any other failure (it was missing here).
    assert out.endswith("\n1 check(s) failed: settings.\n")


async def test_unwritable_data_dir_fails(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes anywhere: a file where the folder should be is unwritable for everyone
        blocked = tmp_path / "file"
        blocked.write_text("x")
        data = blocked / "data"
    else:
        data = tmp_path / "ro"
        data.mkdir(mode=0o500)
    code, out = await remixbot(
        {"REMIXBOT_BACKEND": "demo", "REMIXBOT_DATA_DIR": str(data)}, "check", cwd=tmp_path
    )
    assert code == 1
    assert line(out, "data directory").startswith("[FAIL] data directory:")
    assert "not writable" in out


@pytest.mark.parametrize("backend", BACKENDS)
async def test_each_backend_tells_a_good_key_from_a_bad_one_for_free(backend: str) -> None:
    async with running_fake() as r, aiohttp.ClientSession() as session:
        r.proxy_mode = "task"
        good = await check_key(fake_settings(r, backend), session)
        bad = await check_key(fake_settings(r, backend, REMIXBOT_API_KEY="bad-key-000"), session)
        assert good.ok and "key accepted" in good.sentence and "HTTP 400" in good.sentence
        assert not bad.ok and "refused the key (HTTP 401" in bad.sentence
        assert "bad-key-000" not in bad.sentence
        assert r.tasks == {}  # no task was queued at the task proxy
        assert not [h for h in r.hits if h.startswith("/images/")]
        if backend != "runware":
            # A remix's own encoding, so the refusal is about the missing image, not the body.
            for sent in r.api_requests():
                assert sent.headers["Content-Type"].startswith("multipart/form-data; boundary=")
                assert sent.fields["prompt"] and not sent.files
            assert "image" in good.sentence and "is missing" in good.sentence, good.sentence
            assert "multipart" not in good.sentence


async def test_key_check_reports_an_unreachable_backend_and_the_demo_needs_no_key(
    tmp_path: Path,
) -> None:
    async with running_fake() as r:
        gone = fake_settings(r)
    async with aiohttp.ClientSession() as session:
        verdict = await check_key(gone, session)
        assert not verdict.ok and "could not be reached" in verdict.sentence
        demo = load_settings({"REMIXBOT_BACKEND": "demo"}, dotenv=None)
        verdict = await check_key(demo, session)
        assert verdict.ok and "needs no key" in verdict.sentence


async def test_database_state_current_pending_and_newer(tmp_path: Path) -> None:
    settings = load_settings(
        {"REMIXBOT_BACKEND": "demo", "REMIXBOT_DATA_DIR": str(tmp_path)}, dotenv=None
    )
    assert not inspect_database(settings.db_path).exists
    async with await Store.from_settings(settings):
        pass
    state = inspect_database(settings.db_path)
    assert state.exists and state.pending == () and state.unknown == () and state.applied
    conn = sqlite3.connect(settings.db_path)
    with conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('remixbot.store', '9999_from_the_future', 'now')"
        )
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = ?", (state.applied[-1],))
    conn.close()
    state = inspect_database(settings.db_path)
    assert state.unknown == ("9999_from_the_future",)
    assert state.pending == (inspect_database(tmp_path / "none.sqlite3").pending[-1],)


async def test_the_database_check_reads_postgresql_too(postgres: str, tmp_path: Path) -> None:
    settings = load_settings(
        {
            "REMIXBOT_BACKEND": "demo",
            "REMIXBOT_DATA_DIR": str(tmp_path),
            "REMIXBOT_DATABASE_URL": postgres,
        },
        dotenv=None,
    )

    def check_line() -> str:
        out = io.StringIO()
        _database(settings, Checklist(out))
        return out.getvalue()

    assert "does not exist yet" in check_line()
    async with await Store.from_settings(settings):
        pass
    assert "opens; migrations current" in check_line()
    execute(postgres, "INSERT INTO remixbot_migrations (name) VALUES ('9999_from_the_future')")
    assert "migrations this version does not know (9999_from_the_future)" in check_line()
    away = load_settings(
        {
            "REMIXBOT_BACKEND": "demo",
            "REMIXBOT_DATA_DIR": str(tmp_path),
            "REMIXBOT_DATABASE_URL": "postgresql://remixbot:s3cret-pw@/x?host=/nonexistent",
        },
        dotenv=None,
    )
    out = io.StringIO()
    _database(away, Checklist(out))
    assert "[FAIL]" in out.getvalue() and "cannot be reached" in out.getvalue()
    assert "s3cret-pw" not in out.getvalue()


def test_an_unreachable_postgresql_names_the_reason_and_the_setting(tmp_path: Path) -> None:
    # Needs no server: a socket folder with none in it. The line said only "(OperationalError)".
    away = load_settings(
        {
            "REMIXBOT_BACKEND": "demo",
            "REMIXBOT_DATA_DIR": str(tmp_path),
            "REMIXBOT_DATABASE_URL": f"postgresql://remixbot:s3cret-pw@/x?host={tmp_path}",
        },
        dotenv=None,
    )
    out = io.StringIO()
    _database(away, Checklist(out))
    text = out.getvalue()
    assert text.startswith("[FAIL] database: postgresql://remixbot@/x cannot be reached (")
    assert "No such file or directory" in text
    assert text.rstrip().endswith("; check REMIXBOT_DATABASE_URL and that the server is running")
    assert "s3cret-pw" not in text and "\n" not in text.rstrip()


async def test_the_sample_in_deploy_md_is_what_a_fresh_install_prints(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    found = re.search(r"A fresh install, before its first start.*?\n```\n(.+?)```", text, re.S)
    assert found, "deploy.md's sample of a fresh check is gone"
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        env = world_env(d, r, data, REMIXBOT_HTTP_PORT="8080")
        code, out = await remixbot(env, "check", cwd=tmp_path)
    assert code == 0, out
    # The sample shows the container's data folder and a made-up application id.
    real = out.replace(str(data), "/data").replace(str(d.app_id), "1234567890")
    assert real == found[1]

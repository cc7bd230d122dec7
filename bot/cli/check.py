"""`remixbot check`: one line per check, before starting the bot; non-zero exit if any fails.

The checks: the settings parse (and the backend can use REMIXBOT_MODEL: the start refuses one it
cannot); the data directory is writable; the database opens and its migrations are current; the
Discord token logs in (the application's intents and install link are printed); the backend key
is accepted (by a request that costs nothing, bot/remix/keycheck.py); the slash commands are in
sync. It changes nothing: the database is opened read-only and nothing
is synced.

A warning is not a failure: it says what the next start will do (apply migrations, sync the
commands) or what could be tidier. Commands missing on Discord are normal before the first start
and after an upgrade, because `remixbot run` syncs them when it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import aiohttp

from bot.errors import RemixbotError, SettingsError
from bot.log import setup_logging
from bot.remix.backends import model_setting
from bot.secrets import redact
from bot.settings import Settings, load_settings, missing_sentence
from bot.store.inspect import inspect_database, inspect_postgres

if TYPE_CHECKING:
    from bot.cli._discord_check import DiscordReport

MARKS = {"ok": "[ ok ]", "warn": "[warn]", "fail": "[FAIL]", "skip": "[skip]"}


class Checklist:
    """Prints each check's line as it is decided; remembers which failed and which warned."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed: list[str] = []
        self.warned: list[str] = []

    def line(self, status: str, name: str, text: str) -> None:
        """One line: mark, check name, what was found (continuation lines indented)."""
        if status == "fail":
            self.failed.append(name)
        elif status == "warn":
            self.warned.append(name)
        first, *rest = text.split("\n")
        self.out.write(f"{MARKS[status]} {name}: {first}\n")
        for more in rest:
            self.out.write(f"       {' ' * len(name)}  {more}\n")
        self.out.flush()


def register(sub: argparse._SubParsersAction) -> None:
    """Add `check` to the command line."""
    p = sub.add_parser(
        "check",
        help="check the settings, data directory, database, Discord token, backend key and "
        "slash commands before starting the bot",
    )
    p.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    return run_checks(sys.stdout)


def run_checks(out: TextIO, environ: dict[str, str] | None = None) -> int:
    """Run every check, printing a line each; 0 when none failed, else 1."""
    checks = Checklist(out)
    try:
        settings = load_settings(environ)
    except SettingsError as exc:
        checks.line("fail", "settings", str(exc))
        for name in ("data directory", "database", "discord", "backend key", "slash commands"):
            checks.line("skip", name, "the settings must parse first")
        out.write("1 check(s) failed: settings.\n")  # the same last line as any other failure
        return 1
    # Only warnings: discord.py's INFO lines would interleave with the checklist.
    setup_logging("WARNING")
    logging.getLogger("discord").setLevel(logging.ERROR)
    _settings(settings, checks)
    _data_dir(settings, checks)
    _database(settings, checks)
    asyncio.run(_online(settings, checks))
    if checks.failed:
        out.write(f"{len(checks.failed)} check(s) failed: {', '.join(checks.failed)}.\n")
        return 1
    if checks.warned:
        out.write(f"All checks passed; read the warnings: {', '.join(checks.warned)}.\n")
    else:
        out.write("All checks passed.\n")
    return 0


def _settings(settings: Settings, checks: Checklist) -> None:
    """Parsed; and a model the backend cannot use fails here, as it stops `remixbot run`."""
    parsed = (
        f"parsed (backend {settings.backend}, data in {settings.data_dir}, "
        f"endpoint {'on port ' + str(settings.http_port) if settings.http_port else 'off'})"
    )
    model = model_setting(settings)
    if model.refused:
        checks.line(
            "fail", "settings", f"{model.refused}\nthe bot will not start until it is fixed"
        )
    elif model.ignored:
        checks.line("warn", "settings", f"{parsed}\n{model.ignored}")
    else:
        checks.line("ok", "settings", parsed)


def _data_dir(settings: Settings, checks: Checklist) -> None:
    folder = settings.data_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".check-") as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        checks.line("fail", "data directory", f"{folder} is not writable ({exc.strerror or exc})")
        return
    checks.line("ok", "data directory", f"{folder.resolve()} is writable")


def _database(settings: Settings, checks: Checklist) -> None:
    database = settings.database
    path = settings.database_shown
    if isinstance(database, Path):
        try:
            state = inspect_database(database)
        except sqlite3.Error as exc:
            checks.line("fail", "database", f"{path} does not open as a database ({exc})")
            return
    else:
        try:
            state = inspect_postgres(database)
        except Exception as exc:  # psycopg's errors: the server is away or refused the login
            from bot.store.pg import connect_reason  # psycopg: only with the books in PostgreSQL

            checks.line(
                "fail",
                "database",
                f"{path} cannot be reached ({redact(connect_reason(exc))}); check"
                " REMIXBOT_DATABASE_URL and that the server is running",
            )
            return
    if not state.exists:
        checks.line(
            "ok",
            "database",
            f"{path} does not exist yet; the first start (or `remixbot db init`) creates it",
        )
    elif state.unknown:
        checks.line(
            "fail",
            "database",
            f"{path} has migrations this version does not know ({', '.join(state.unknown)}); "
            "it was used by a newer Remixbot: upgrade, or restore a backup",
        )
    elif state.problems:
        checks.line("fail", "database", f"{path} is damaged: {state.problems[0]}")
    elif state.pending:
        checks.line(
            "warn",
            "database",
            f"{path} opens; {len(state.pending)} migration(s) will be applied at the next start "
            f"({', '.join(state.pending)}); take a backup first"
            f" ({'remixbot backup FILE' if isinstance(database, Path) else 'pg_dump'})",
        )
    else:
        checks.line(
            "ok", "database", f"{path} opens; migrations current ({len(state.applied)} applied)"
        )


async def _online(settings: Settings, checks: Checklist) -> None:
    found = await _discord(settings, checks)
    async with aiohttp.ClientSession(trust_env=False) as session:
        from bot.remix.keycheck import check_key

        verdict = await check_key(settings, session)
    checks.line("ok" if verdict.ok else "fail", "backend key", verdict.sentence)
    _commands(found, checks)


async def _discord(settings: Settings, checks: Checklist) -> DiscordReport | None:
    if not settings.discord_token:
        checks.line("fail", "discord", missing_sentence("discord_token"))
        return None
    # Here, not at the top: every other command starts without discord.py.
    from bot.cli._discord_check import inspect_discord

    try:
        found = await inspect_discord(settings)
    except RemixbotError as exc:
        checks.line("fail", "discord", str(exc))
        return None
    privileged = ", ".join(found.privileged) or "none"
    lines = [
        f"logged in as {found.bot_name} (application {found.application_id})",
        f"intents: {', '.join(found.intents)} (privileged: {privileged})",
        f"install link: {found.install_link}",
    ]
    status = "ok"
    if found.portal_privileged:
        lines.append(
            f"the portal has privileged intents on ({', '.join(found.portal_privileged)}); "
            "the bot needs none, you can switch them off"
        )
        status = "warn"
    checks.line(status, "discord", "\n".join(lines))
    return found


def _labels(found: DiscordReport, names: Iterable[str]) -> str:
    """The commands as members see them: slash commands first, then menu entries."""
    return ", ".join(sorted(map(found.label, names), key=lambda s: (not s.startswith("/"), s)))


def _commands(found: DiscordReport | None, checks: Checklist) -> None:
    if found is None:
        checks.line("skip", "slash commands", "needs the Discord login")
        return
    if found.commands_in_sync:
        checks.line("ok", "slash commands", f"in sync ({_labels(found, found.local_commands)})")
        return
    missing = sorted(set(found.local_commands) - set(found.remote_commands))
    extra = sorted(set(found.remote_commands) - set(found.local_commands))
    detail = "; ".join(
        part
        for part in (
            f"missing on Discord: {_labels(found, missing)}" if missing else "",
            f"on Discord but not in the code: {_labels(found, extra)}" if extra else "",
            "" if missing or extra else "the commands changed since the last sync",
        )
        if part
    )
    if found.synced_shape:
        # The last sync recorded this very shape, so the next start will not upload again:
        # something else changed Discord's copy, and only a sync puts it back.
        checks.line(
            "fail",
            "slash commands",
            f"not in sync ({detail}), though the last sync uploaded this version's commands; "
            "run `remixbot sync` (starting the bot will not: it syncs only when they changed)",
        )
        return
    # Not a failure: before the first start and after an upgrade this is how things are, and
    # `remixbot run` uploads them when it starts.
    checks.line(
        "warn",
        "slash commands",
        f"not in sync yet ({detail}); the bot syncs them when it starts "
        "(`remixbot sync` does it now)",
    )

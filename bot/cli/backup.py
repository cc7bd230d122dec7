"""`remixbot backup FILE`: a consistent copy of the database, safe while the bot runs."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from bot.cli._common import cli_settings, print_json
from bot.errors import InvalidRequest
from bot.store.backup import backup_database, backup_target
from bot.store.db import has_books
from bot.store.store import books_missing, books_place


def register(sub: argparse._SubParsersAction) -> None:
    """Add `backup` to the command line."""
    p = sub.add_parser(
        "backup",
        help="copy the database to FILE, consistently, while the bot runs",
    )
    p.add_argument(
        "file",
        metavar="FILE",
        help="where the copy goes: a new file, or a folder (an existing one, or a name ending"
        " in /) for remixbot-YYYY-MM-DD.sqlite3 in it",
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_backup)


def _backup(args: argparse.Namespace) -> int:
    settings = cli_settings()
    if not isinstance(settings.database, Path):
        raise InvalidRequest(
            "The books are in PostgreSQL (REMIXBOT_DATABASE_URL); back them up with the"
            " server's own tools, such as pg_dump --format=custom."
        )
    if not has_books(settings.db_path):
        raise books_missing(settings, settings.db_path)
    target = backup_target(args.file, date.today())  # a folder: a dated file in it
    report = backup_database(settings.db_path, target, overwrite=args.force)
    if args.json:
        print_json({"file": str(report.path), "bytes": report.size, "jobs": report.jobs})
    else:
        source = books_place(settings.db_path)
        print(
            f"Backed up {source} to {report.path} "
            f"({report.size / 1_000_000:.1f} MB, {report.jobs} job{'' if report.jobs == 1 else 's'}). "
            f"Restore: stop the bot, copy it back to {source}, start the bot."
        )
    return 0

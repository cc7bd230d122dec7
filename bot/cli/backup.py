"""`remixbot backup FILE`: a consistent copy of the database, safe while the bot runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli._common import cli_settings, print_json
from bot.errors import InvalidRequest
from bot.store.backup import backup_database


def register(sub: argparse._SubParsersAction) -> None:
    """Add `backup` to the command line."""
    p = sub.add_parser(
        "backup",
        help="copy the database to FILE, consistently, while the bot runs",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="where the copy goes (a new file)")
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
    report = backup_database(settings.db_path, args.file, overwrite=args.force)
    if args.json:
        print_json({"file": str(report.path), "bytes": report.size, "jobs": report.jobs})
    else:
        print(
            f"Backed up {settings.db_path} to {report.path} "
            f"({report.size / 1_000_000:.1f} MB, {report.jobs} jobs). "
            f"Restore: stop the bot, copy it back to {settings.db_path}, start the bot."
        )
    return 0

"""`remixbot db init`: start new books where the settings point; `remixbot db copy --to
postgresql://…`: move the books from the SQLite file to PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bot.cli._common import cli_settings, print_json
from bot.errors import InvalidRequest, RemixbotError
from bot.settings import Settings, shown_database
from bot.store import BooksMissing, Store, defaults_from_settings
from bot.store.copy import check_not_in_use, copy_books
from bot.store.db import has_books
from bot.store.store import books_missing, books_place


class BooksDoNotBalance(RemixbotError):
    """The copy was made, but check_books found problems in it."""

    exit_code = 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add `db copy` to the command line."""
    p = sub.add_parser(
        "db", help="the books' database: start new books, or copy SQLite into PostgreSQL"
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    init = actions.add_parser(
        "init",
        help="start new, empty books where the settings point (existing books are left as they"
        " are)",
        description="The admin commands (quota, jobs, stats, backup, forget) work only on books"
        " that exist; the bot's first start and `remixbot remix` make them, and so does this,"
        " for setting quotas before the first start. The books go to REMIXBOT_DATABASE_URL, or"
        " REMIXBOT_DATA_DIR/remixbot.sqlite3.",
    )
    init.add_argument("--json", action="store_true", help="print JSON for scripts")
    init.set_defaults(handler=_init)
    copy = actions.add_parser(
        "copy",
        help="copy the SQLite books (jobs, ledger, policies, input references) into an empty"
        " PostgreSQL database, then check them",
        description="Stop the bot first. The SQLite file is REMIXBOT_DATABASE_URL's (or the one"
        " in REMIXBOT_DATA_DIR); stored images stay in REMIXBOT_DATA_DIR. Then set"
        " REMIXBOT_DATABASE_URL to the PostgreSQL URL and start the bot.",
    )
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql://user:pw@host/db")
    copy.add_argument("--from", dest="source", type=Path, metavar="FILE", help="the SQLite file")
    copy.add_argument("--json", action="store_true", help="print JSON for scripts")
    copy.set_defaults(handler=_copy)


def _init(args: argparse.Namespace) -> int:
    settings = cli_settings()
    created = asyncio.run(_open_or_create(settings))
    where = books_place(settings.database)
    if args.json:
        print_json({"database": where, "created": created})
    elif created:
        print(f"Started new, empty books at {where}.")
    else:
        print(f"The books at {where} are already there; nothing was started.")
    return 0


async def _open_or_create(settings: Settings) -> bool:
    """Open the books (bringing them up to date), or make them if there are none: made?"""
    try:
        async with await Store.from_settings(settings, create=False):
            return False
    except BooksMissing:
        async with await Store.from_settings(settings):
            return True


def _copy(args: argparse.Namespace) -> int:
    settings = cli_settings()
    if not args.to.startswith(("postgresql://", "postgres://")):
        raise InvalidRequest("--to must be a postgresql:// URL of an empty database.")
    source = args.source or settings.db_path
    if args.source is None and not has_books(source):
        raise books_missing(settings, source)
    if not source.is_file():
        raise InvalidRequest(f"There is no SQLite file at {source} to copy.")
    check_not_in_use(source)
    problems, rows = asyncio.run(_copy_and_check(settings, source, args.to))
    if args.json:
        print_json({"copied": rows, "problems": problems, "to": shown_database(args.to)})
    else:
        counts = ", ".join(f"{n} {table}" for table, n in rows.items() if n)
        print(f"Copied {source} to {shown_database(args.to)}: {counts or 'no rows'}.")
    if problems:
        raise BooksDoNotBalance("The copied books do not balance: " + "; ".join(problems[:5]) + ".")
    if not args.json:
        print("The books balance. Set REMIXBOT_DATABASE_URL to the PostgreSQL URL to use them.")
    return 0


async def _copy_and_check(settings: Settings, source: Path, url: str) -> tuple[list[str], dict]:
    defaults = defaults_from_settings(settings)
    # Opened first so that an older file is migrated to today's shape before it is read.
    async with await Store.open(source, defaults=defaults, data_dir=settings.data_dir):
        pass
    report = await asyncio.to_thread(copy_books, source, url)
    async with await Store.open(
        url, defaults=defaults, data_dir=settings.data_dir, reconcile=False
    ) as copied:
        return await copied.check_books(), report.rows

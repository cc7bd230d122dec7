"""`remixbot sync [--guild ID]`: upload the application commands now, then exit."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any

from bot.cli._common import cli_settings, quiet_one_shot_logs
from bot.errors import InvalidRequest
from bot.extensions import DEFAULT_EXTENSIONS
from bot.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add `sync` to the command line."""
    p = sub.add_parser("sync", help="upload the slash commands to Discord now")
    p.add_argument(
        "--guild",
        type=int,
        metavar="ID",
        help="copy the commands to this server only (shows at once; for testing)",
    )
    p.add_argument(
        "--clear",
        action="store_true",
        help="with --guild: remove the server's copy of the commands",
    )
    p.set_defaults(handler=_sync)


def _sync(args: argparse.Namespace) -> int:
    if args.clear and args.guild is None:
        raise InvalidRequest(
            "--clear needs --guild ID: it removes one server's copy of the commands."
        )
    settings = cli_settings(require=("discord_token",))
    quiet_one_shot_logs()
    synced = asyncio.run(sync_once(settings, guild=args.guild, clear=args.clear))
    if args.clear:
        print(
            f"Removed server {args.guild}'s copy of the commands; the global commands are"
            " unchanged and remain available there."
        )
    elif args.guild is not None:
        print(f"Copied {len(synced)} application commands to server {args.guild}.")
    else:
        print(
            f"Synced {len(synced)} application commands globally"
            " (Discord clients may take a while to show them)."
        )
    return 0


async def sync_once(
    settings: Settings,
    *,
    guild: int | None = None,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    clear: bool = False,
) -> list[Any]:
    """Log in over REST only, load the cogs, force a sync (global or one guild), log out."""
    from bot.client import RemixBot, apply_discord_endpoints, login_errors  # not at CLI start

    token = settings.require_discord_token()
    apply_discord_endpoints(settings)
    bot = RemixBot(settings, extensions=extensions, auto_sync=False)
    async with bot:
        with login_errors(settings):
            await bot.login(token)
        return await bot.sync_commands(guild=guild, clear=clear)

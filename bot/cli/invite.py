"""`remixbot invite [--client-id ID]`: print the OAuth2 URL that adds the bot to a server."""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import urlencode

from bot.cli._common import cli_settings, quiet_one_shot_logs
from bot.errors import InvalidRequest, SettingsError
from bot.settings import Settings
from bot.store.admin import parse_snowflake

SCOPES = ("bot", "applications.commands")

# What /remix needs: see the channel and its history, post results with files, embeds and buttons
# (also in threads), and react.
# (bit numbers from Discord's permission table; an int keeps `remixbot --help` free of discord.py)
PERMISSION_BITS = {
    "view_channel": 10,
    "send_messages": 11,
    "send_messages_in_threads": 38,
    "embed_links": 14,
    "attach_files": 15,
    "read_message_history": 16,
    "add_reactions": 6,
}
BOT_PERMISSIONS = sum(1 << bit for bit in PERMISSION_BITS.values())


def register(sub: argparse._SubParsersAction) -> None:
    """Add `invite` to the command line."""
    p = sub.add_parser("invite", help="print the URL that adds the bot to a server")
    p.add_argument(
        "--client-id",
        type=_client_id,
        metavar="ID",
        help="the application id (default: ask Discord, using DISCORD_TOKEN)",
    )
    p.set_defaults(handler=_invite)


def _client_id(text: str) -> int:
    """The Application ID as given on the command line (argparse's own "invalid int value" says
    neither what the number is nor where to find it)."""
    try:
        return parse_snowflake(text, "application")
    except InvalidRequest:
        raise argparse.ArgumentTypeError(
            "must be the Application ID (digits) from the General Information page of the"
            f" Developer Portal, not {text!r}"
        ) from None


def _invite(args: argparse.Namespace) -> int:
    client_id = args.client_id
    if client_id is None:
        settings = cli_settings()
        if not settings.discord_token:
            raise SettingsError(
                "DISCORD_TOKEN is not set; give the Application ID (General Information page of"
                " the Developer Portal) with --client-id ID, or set DISCORD_TOKEN to look it up."
            )
        quiet_one_shot_logs()
        client_id = asyncio.run(fetch_client_id(settings))
    print(invite_url(client_id))
    return 0


def invite_url(client_id: int) -> str:
    """The OAuth2 authorize URL with the bot's scopes and permissions."""
    query = urlencode(
        {"client_id": client_id, "scope": " ".join(SCOPES), "permissions": BOT_PERMISSIONS}
    )
    return f"https://discord.com/oauth2/authorize?{query}"


async def fetch_client_id(settings: Settings) -> int:
    """Log in over REST with the token and return the application id."""
    from bot.client import fetch_application_id  # here: other commands start without discord.py

    return await fetch_application_id(settings)

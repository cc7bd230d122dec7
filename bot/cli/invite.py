"""`remixbot invite [--client-id ID]`: print the OAuth2 URL that adds the bot to a server."""

from __future__ import annotations

import argparse
import asyncio

import discord

from bot.cli._common import cli_settings
from bot.client import apply_discord_endpoints, login_errors
from bot.settings import Settings

SCOPES = ("bot", "applications.commands")

# What /remix needs: see the channel and its history, post results with files, embeds and buttons
# (also in threads), and react.
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `invite` to the command line."""
    p = sub.add_parser("invite", help="print the URL that adds the bot to a server")
    p.add_argument(
        "--client-id",
        type=int,
        metavar="ID",
        help="the application id (default: ask Discord, using DISCORD_TOKEN)",
    )
    p.set_defaults(handler=_invite)


def _invite(args: argparse.Namespace) -> int:
    client_id = args.client_id
    if client_id is None:
        client_id = asyncio.run(fetch_client_id(cli_settings()))
    print(invite_url(client_id))
    return 0


def invite_url(client_id: int) -> str:
    """The OAuth2 authorize URL with the bot's scopes and permissions."""
    return discord.utils.oauth_url(client_id, permissions=BOT_PERMISSIONS, scopes=SCOPES)


async def fetch_client_id(settings: Settings) -> int:
    """Log in over REST with the token and return the application id."""
    token = settings.require_discord_token()
    apply_discord_endpoints(settings)
    client = discord.Client(intents=discord.Intents.none())
    async with client:
        with login_errors(settings):
            await client.login(token)
        if client.application_id is None:
            raise RuntimeError("Discord did not report the application id")
        return client.application_id

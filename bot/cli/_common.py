"""Helpers shared by the CLI modules: settings, logging and JSON output."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Collection
from typing import Any

from bot.log import setup_logging
from bot.settings import Settings, load_settings


def cli_settings(*, require: Collection[str] = (), **overrides: Any) -> Settings:
    """Load and validate settings for a CLI command, and set up redacting logs.

    `require` names the settings this command cannot do without (`api_key`, `discord_token`):
    their absence is reported together with every other problem in the settings.
    """
    settings = load_settings(overrides=overrides or None, require=require)
    setup_logging(settings.log_level, fmt=settings.log_format)
    return settings


def quiet_one_shot_logs() -> None:
    """For a command that logs in over REST once: no INFO chatter from discord.py around its answer."""
    for name in ("discord", "remixbot.client"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))


def plural(count: int, noun: str) -> str:
    """`1 image`, `2 images`: a count with its noun."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def print_json(value: Any) -> None:
    """Print a value as indented JSON on stdout."""
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")

"""Helpers shared by the CLI modules: settings, logging and JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any

from bot.log import setup_logging
from bot.settings import Settings, load_settings


def cli_settings(**overrides: Any) -> Settings:
    """Load and validate settings for a CLI command, and set up redacting logs."""
    settings = load_settings(overrides=overrides or None)
    setup_logging(settings.log_level)
    return settings


def print_json(value: Any) -> None:
    """Print a value as indented JSON on stdout."""
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")

"""`python -m tests.fakediscord.launcher`: `remixbot run` plus the test-only probe extension.

It goes through the same `run_bot()` as `remixbot run`; only the extension list and a short
guild-ready wait differ, so no test code enters the production defaults.
"""

from __future__ import annotations

import os
import sys

from bot.cli._common import cli_settings
from bot.cli.run import run_bot
from bot.client import DEFAULT_EXTENSIONS
from bot.errors import RemixbotError
from bot.secrets import redact

PROBE_EXTENSIONS = ("tests.fakediscord.probe_ext",)


def main() -> int:
    """Run the bot with the probe extension; errors end as one line, as in `remixbot`."""
    extra = tuple(e for e in os.environ.get("FAKEDISCORD_EXTENSIONS", "").split(",") if e.strip())
    try:
        settings = cli_settings()
        return run_bot(
            settings,
            extensions=(*DEFAULT_EXTENSIONS, *PROBE_EXTENSIONS, *extra),
            bot_options={"guild_ready_timeout": 0.05},
        )
    except RemixbotError as exc:
        print(f"remixbot: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

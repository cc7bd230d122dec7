"""`remixbot run`: start the Discord bot."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add `run` to the command line."""
    p = sub.add_parser("run", help="run the Discord bot")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    print(
        "remixbot: the Discord side is not built yet; use `remixbot remix` from the terminal for now.",
        file=sys.stderr,
    )
    return 1

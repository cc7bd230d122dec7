"""The `remixbot` command: each module in this package adds its subcommands through `register`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from bot.errors import RemixbotError
from bot.secrets import redact


def build_parser() -> argparse.ArgumentParser:
    """Build the parser from every `bot.cli.*` module that defines `register(subparsers)`."""
    parser = argparse.ArgumentParser(
        prog="remixbot",
        description="Remixbot: remix images with Ideogram from Discord or the terminal.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `remixbot` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except RemixbotError as exc:
        print(f"remixbot: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return int(code or 0)

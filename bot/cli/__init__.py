"""The `remixbot` command: each module in this package adds its subcommands through `register`."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import NoReturn

from bot.cli._errors import Interrupted, UsageError, report_crash, report_error
from bot.errors import RemixbotError


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are ordinary errors, so `--json` reports them as JSON too."""

    def error(self, message: str) -> NoReturn:
        """Print the usage line, then raise the message as a UsageError (exit code 2)."""
        self.print_usage(sys.stderr)
        command = self.prog.removeprefix("remixbot").strip()
        end = "" if message.endswith((".", "?", "!")) else "."
        raise UsageError(f"{command}: {message}{end}" if command else f"{message}{end}")


def installed_version() -> str:
    """The version of the installed package (pyproject.toml's, as pip installed it)."""
    try:
        return metadata.version("remixbot")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """Build the parser from every `bot.cli.*` module that defines `register(subparsers)`."""
    parser = Parser(
        prog="remixbot",
        description="Remixbot: remix images with Ideogram from Discord or the terminal.",
    )
    parser.add_argument("--version", action="version", version=f"remixbot {installed_version()}")
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
    try:
        try:
            return _main(list(sys.argv[1:] if argv is None else argv))
        finally:
            sys.stdout.flush()  # a reader that left early shows here, not at interpreter exit
    except BrokenPipeError:
        # The reader closed the pipe (`remixbot … | head`): stop quietly. Python's recipe (the
        # signal module's note on SIGPIPE): point the streams at devnull so that the final
        # flush at exit does not print a second traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.dup2(devnull, sys.stderr.fileno())
        return 1


def _main(argv: list[str]) -> int:
    as_json = "--json" in argv  # until parsed: a usage error of a --json command is JSON too
    try:
        args = build_parser().parse_args(argv)
        as_json = bool(getattr(args, "json", False))
        return int(args.handler(args) or 0)
    except RemixbotError as exc:
        return report_error(exc, as_json=as_json)
    except KeyboardInterrupt:
        return report_error(Interrupted("Interrupted."), as_json=as_json)
    except BrokenPipeError:
        raise  # handled in main: nobody is reading any more
    except Exception as exc:
        if not as_json:
            raise
        return report_crash(exc)

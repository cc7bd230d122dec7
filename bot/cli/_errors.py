"""How the terminal shows a refusal or failure: sentences on stderr and, for `--json`, one object.

Every `--json` command that fails prints {"error": sentence, "kind": ..., "exit_code": n} on
stdout, so a script reads JSON whatever happened; the sentence also goes to stderr for a person.
"""

from __future__ import annotations

import re
import sys
import traceback
from typing import Any

from bot.cli._common import print_json
from bot.cli.render import error_sentence
from bot.errors import RemixbotError
from bot.lifecycle import Ending
from bot.secrets import redact


class UsageError(RemixbotError):
    """The command line itself is wrong (unknown option, bad value for an option)."""

    exit_code = 2


class Interrupted(RemixbotError):
    """Ctrl-C."""

    exit_code = 130


def error_kind(exc: BaseException) -> str:
    """The error's class in snake_case without `Error`: `invalid_request`, `quota_exceeded`, …"""
    name = type(exc).__name__
    name = name.removesuffix("Error") or name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def ending_kind(ending: Ending) -> str:
    """The kind of a remix that ended without (all of) its images: its error's, or the exit's."""
    if ending.error is not None:
        return error_kind(ending.error)
    return str(ending.exit).replace("-", "_")  # nothing_delivered, not_posted, timed_out, …


def error_object(sentence: str, kind: str, exit_code: int) -> dict[str, Any]:
    """The JSON shape of a failure, shared by errors and by a remix that saved nothing."""
    return {"error": sentence, "kind": kind, "exit_code": exit_code}


def say(sentence: str) -> None:
    """One line per sentence on stderr, each prefixed with `remixbot:`."""
    for line in sentence.splitlines() or [""]:
        print(f"remixbot: {line}", file=sys.stderr, flush=True)


def report_error(exc: RemixbotError, *, as_json: bool) -> int:
    """Show a known error (sentences on stderr, the JSON object on stdout); return its exit code."""
    text = redact(error_sentence(exc))
    say(text)
    if as_json:
        sentence = " ".join(line.strip() for line in text.splitlines())
        print_json(error_object(sentence, error_kind(exc), exc.exit_code))
    return exc.exit_code


def report_crash(exc: BaseException) -> int:
    """An unexpected exception under `--json`: the traceback on stderr, the JSON object on stdout."""
    print(redact("".join(traceback.format_exception(exc))), file=sys.stderr, flush=True)
    sentence = f"Unexpected error ({type(exc).__name__}); the traceback is on stderr."
    print_json(error_object(sentence, "internal", 1))
    return 1

"""Reading the two settings files, `.env` and TOML, into raw values plus located problems.

Both files are read the same way: every key that is not a setting, and every line that cannot be
read, becomes one sentence naming the file and the line, collected rather than raised, so that an
admin sees every problem of a run at once. Values are never quoted back: a malformed line may hold
a token.
"""

from __future__ import annotations

import difflib
import io
import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream

# Keys in a `.env` file or the environment that are ours, so an unknown one is a typo. Other keys
# are left alone: the same file often configures Docker Compose or other tools.
OUR_PREFIX = "REMIXBOT_"


def unknown_setting(key: str, where: str, known: Collection[str]) -> str:
    """The one sentence for a key that is not a setting, with the nearest known name if any."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    hint = (
        f"did you mean {close[0]!r}?"
        if close
        else "the README's Configuration table lists every setting."
    )
    return f"Unknown setting {key!r} in {where}; {hint}"


def _read_text(path: Path, problems: list[str], missing: str | None = None) -> str | None:
    """The file's text, or None; `missing` is the sentence for a file that must exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing:
            problems.append(missing)
    except UnicodeDecodeError:
        problems.append(f"The settings file {str(path)!r} is not UTF-8 text.")
    except OSError as exc:
        problems.append(f"The settings file {str(path)!r} cannot be read ({exc.strerror}).")
    return None


def read_dotenv(path: Path, known: Collection[str], problems: list[str]) -> dict[str, str]:
    """Values of a `.env` file by python-dotenv's rules (quotes, `#` comments, `export`, `${VAR}`).

    A missing file is no file. A line that is not NAME=value, and an unknown `REMIXBOT_` name,
    each add a sentence to `problems`; the remaining lines are still read.
    """
    text = _read_text(path, problems)
    if text is None:
        return {}
    good: list[str] = []
    for binding in parse_stream(io.StringIO(text)):
        # python-dotenv counts from the blank lines before a binding; name the binding's own line.
        source = binding.original.string
        line = binding.original.line + source[: len(source) - len(source.lstrip())].count("\n")
        key = binding.key
        if binding.error or (key is not None and binding.value is None):
            problems.append(_malformed(path, line, key, known))
            continue
        if key is not None and key not in known and key.startswith(OUR_PREFIX):
            problems.append(unknown_setting(key, f"{path}, line {line}", known))
            continue
        good.append(binding.original.string)
    # python-dotenv again, on the good lines only, for its `${VAR}` expansion.
    values = dotenv_values(stream=io.StringIO("".join(good)))
    return {k: v for k, v in values.items() if v is not None}


def unknown_in_environment(
    environ: Mapping[str, str], known: Collection[str], problems: list[str]
) -> None:
    """Add a sentence for each `REMIXBOT_` variable of the environment that is not a setting
    (a typo there would otherwise be ignored as silently as anywhere else)."""
    for key in sorted(environ):
        if key.startswith(OUR_PREFIX) and key not in known:
            problems.append(unknown_setting(key, "the environment", known))


def _malformed(path: Path, line: int, key: str | None, known: Collection[str]) -> str:
    # Name the setting only when it is one of ours: any other word on the line may be a secret.
    if key is not None and key in known:
        return f"Cannot read {path}, line {line}: {key} has no value; write it as {key}=value."
    return (
        f"Cannot read {path}, line {line}: write each setting as NAME=value "
        "(quote a value with spaces, start a comment with #)."
    )


def read_toml(path: Path, known: Collection[str], problems: list[str]) -> dict[str, Any]:
    """The settings of a TOML file (keys are the lower-case setting names); problems collected."""
    missing = f"REMIXBOT_CONFIG names {str(path)!r}, which does not exist."
    text = _read_text(path, problems, missing)
    if text is None:
        return {}
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"REMIXBOT_CONFIG file {str(path)!r} is not valid TOML: {exc}.")
        return {}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in known:
            values[key] = value
        else:
            problems.append(unknown_setting(key, _toml_where(path, text, key), known))
    return values


def _toml_where(path: Path, text: str, key: str) -> str:
    """`file, line N` for a top-level key (tomllib keeps no positions), or just the file."""
    pattern = re.compile(
        rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*[=.]"""
    )
    header = re.compile(rf"""^\s*\[+\s*(?:{re.escape(key)}|"{re.escape(key)}")\s*[\].]""")
    for n, line in enumerate(text.splitlines(), 1):
        if pattern.match(line) or header.match(line):
            return f"{path}, line {n}"
    return str(path)

"""The README and docs/ stand alone: their links resolve inside the repository, they point at no
team-only files, and the `remixbot` commands they show exist."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bot.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Files that readers outside the team cannot open.
TEAM_ONLY = re.compile(
    r"\.\./shared|reliability\.md|ideogram-api\.md|discord-protocol\.md|DESIGN\.md"
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_send_readers_only_to_files_in_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert TEAM_ONLY.findall(text) == []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _shown_commands() -> list[tuple[str, list[str]]]:
    shown = []
    for doc in DOCS:
        in_code = False
        for line in doc.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_code = not in_code
            elif in_code and line.lstrip().startswith("remixbot "):
                words = line.split("#")[0].split()
                shown.append((doc.name, words[1:3]))
    return shown


def test_every_command_the_docs_show_exists() -> None:
    commands = _subcommands(build_parser())
    shown = _shown_commands()
    assert len(shown) > 20  # the walk finds the examples
    for doc, words in shown:
        assert words[0] in commands, f"{doc}: remixbot {words[0]}"
        actions = _subcommands(commands[words[0]])
        if actions:
            assert words[1] in actions, f"{doc}: remixbot {' '.join(words)}"


DELIMITER_ROW = re.compile(r"^\s*\|?\s*:?-{3,}")


def _cell_count(row: str) -> int:
    """Cells in a table row as GitHub splits them: on every `|` not escaped, code spans too."""
    inner = row.strip().removeprefix("|")
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return len(re.split(r"(?<!\\)\|", inner))


def _table_problems(text: str) -> list[str]:
    problems = []
    lines = text.splitlines()
    in_code = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif (
            not in_code
            and line.lstrip().startswith("|")
            and i + 1 < len(lines)
            and DELIMITER_ROW.match(lines[i + 1])
        ):
            header = _cell_count(line)
            i += 1
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                row = lines[i].rstrip()
                if _cell_count(row) != header or not row.endswith("|"):
                    problems.append(f"line {i + 1}: {_cell_count(row)} cells, header has {header}")
                i += 1
            continue
        i += 1
    return problems


def test_the_table_check_sees_a_stray_cell_and_a_pipe_in_a_code_span() -> None:
    table = "| a | b |\n|---|---|\n| x | y |\n| x | y |; z\n| `p|q` | y |\n| `p\\|q` | y |\n"
    assert _table_problems(table) == [
        "line 4: 3 cells, header has 2",
        "line 5: 3 cells, header has 2",
    ]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_table_row_has_as_many_cells_as_its_header(doc: Path) -> None:
    assert _table_problems(doc.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_unit_files_keep_comments_on_lines_of_their_own(doc: Path) -> None:
    """systemd reads `#` as a comment only at the start of a line: after a value it is the value."""
    blocks = re.findall(r"```ini\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    for block in blocks:
        for line in block.splitlines():
            assert line.lstrip().startswith(("#", ";")) or "#" not in line, line

"""The import rules of docs/architecture.md, enforced by reading the source."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Modules of bot/ allowed to import discord: the client, the composition root and the CLI that starts it.
DISCORD_ALLOWED = {
    "bot/__main__.py",
    "bot/client.py",
    "bot/cli/run.py",
    "bot/cli/sync.py",
    "bot/cli/invite.py",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
            if node.module.startswith("bot.client"):
                names.add("bot.client")
    return names


def test_domain_never_imports_discord_or_cogs() -> None:
    offenders = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in DISCORD_ALLOWED or rel.startswith("bot/discord_"):
            continue
        bad = _imports(path) & {"discord", "cogs", "bot.client"}
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert offenders == []


def test_cogs_never_import_each_other() -> None:
    offenders = []
    for path in sorted((ROOT / "cogs").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cogs."):
                if not node.module.split(".")[1].startswith("_"):
                    offenders.append(f"{path.name}: {node.module}")
    assert offenders == []

"""The import rules of docs/architecture.md, checked on the project's resolved import graph.

Every module under bot/ and cogs/ is parsed with `ast`. Each import statement (`import a.b`,
`from a import b` where `b` may be a submodule, relative `from ..a import b`) is resolved to the
module it loads, wherever it stands: at the top, inside a function, under `if TYPE_CHECKING:`.
A rule in the table below forbids edges from some modules to others, directly or through any
chain of project modules. A dotted name in a string (how bot/ names the cogs) is not an import.

A second test imports every domain module in a fresh interpreter where `discord` cannot be
imported at all, which also covers imports the scan cannot see (importlib, `__import__`).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "cogs")  # the code the rules cover

# The modules of bot/ that talk to Discord; every other module under bot/ is the domain.
DISCORD_SIDE = (
    "bot.client",  # RemixBot, the discord.py client
    "bot.discord_sync",  # command-sync state, used only by the client
    "bot.__main__",  # `python -m bot`: the composition root's entry point
    "bot.cli.run",  # `remixbot run` starts the bot
    "bot.cli.sync",  # `remixbot sync` logs in to sync the commands
    "bot.cli.invite",  # `remixbot invite` logs in to read the application id
    "bot.cli.check",  # `remixbot check` logs in to Discord (through the next one)
    "bot.cli._discord_check",  # reads the application, its intents and the commands
)
LEAVES = ("bot.settings", "bot.settings_files", "bot.secrets", "bot.log", "bot.errors")


@dataclass(frozen=True)
class Rule:
    """One row of the layer table: modules matching `applies` (but not `excluding`) never import
    a module matching `forbids` (unless it matches `allowed`); with `transitive`, not even through
    a chain of project modules. Patterns are `fnmatch` patterns on dotted names."""

    name: str
    applies: tuple[str, ...]
    forbids: tuple[str, ...]
    excluding: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()
    transitive: bool = False


LAYERS = (
    # Leaves sit under everything (settings, secrets, logging, errors): any module may import
    # them, so they import nothing of the project but each other.
    Rule(
        "leaves import only leaves",
        applies=LEAVES,
        forbids=("bot", "bot.*", "cogs", "cogs.*", "tests", "tests.*"),
        allowed=LEAVES,
    ),
    # The domain runs without discord.py (the terminal commands, tests, another front end), so it
    # never reaches discord, a cog or the client, not even through another project module.
    Rule(
        "domain never reaches discord, cogs or bot.client",
        applies=("bot", "bot.*"),
        excluding=DISCORD_SIDE,
        forbids=("discord", "discord.*", "cogs", "cogs.*", "bot.client"),
        transitive=True,
    ),
    # A cog is one feature; what two cogs share lives in a presentation module (cogs/_*.py).
    Rule(
        "cogs import no other cog",
        applies=("cogs.*",),
        forbids=("cogs.*",),
        allowed=("cogs._*",),
    ),
    # bot/ loads the cogs by dotted name (strings in bot/extensions.py), never by import.
    Rule("bot never imports cogs", applies=("bot", "bot.*"), forbids=("cogs", "cogs.*")),
)


# ---------------------------------------------------------------------------------- the checker


@dataclass(frozen=True)
class Source:
    """One module's source text, under its dotted name."""

    name: str
    text: str
    is_package: bool = False  # an `__init__.py`: relative imports start from the module itself


@dataclass(frozen=True)
class Edge:
    """One resolved import: the module it loads and the line of the statement."""

    target: str
    line: int


def project_sources(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Source]:
    """Every module of the given top-level packages, by dotted name."""
    sources: dict[str, Source] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            sources[name] = Source(name, path.read_text(encoding="utf-8"), is_package)
    return sources


def _base(source: Source, level: int, module: str | None) -> str:
    """The absolute name that `from <level dots><module> import ...` starts from."""
    if level == 0:
        return module or ""
    package = source.name if source.is_package else source.name.rpartition(".")[0]
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        raise ValueError(f"{source.name}: relative import beyond the top-level package")
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{module}" if module else base


def resolve_imports(source: Source, known: Iterable[str]) -> list[Edge]:
    """Every module `source` imports, resolved to absolute names (`known` are the project's)."""
    known = set(known)
    edges: list[Edge] = []
    for node in ast.walk(ast.parse(source.text)):
        if isinstance(node, ast.Import):
            edges.extend(Edge(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _base(source, node.level, node.module)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                # `from bot import client` loads the module bot.client; `from bot.x import Name`
                # loads bot.x and takes a name from it.
                edges.append(Edge(submodule if submodule in known else base, node.lineno))
    return sorted(set(edges), key=lambda e: (e.line, e.target))


def import_graph(sources: Mapping[str, Source]) -> dict[str, list[Edge]]:
    """The project import graph: each module's resolved imports."""
    return {name: resolve_imports(src, sources) for name, src in sources.items()}


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _neighbours(graph: Mapping[str, list[Edge]], name: str) -> list[str]:
    # Loading a module runs its parent package first, so the package's imports count too.
    parent = name.rpartition(".")[0]
    found = [edge.target for edge in graph.get(name, [])]
    return found + ([parent] if parent in graph else [])


def _chain(graph: Mapping[str, list[Edge]], start: str, rule: Rule) -> list[str] | None:
    """The shortest chain of imports from `start` to a module the rule forbids, if any."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        name = queue.popleft()
        for target in _neighbours(graph, name):
            if target in came_from:
                continue
            came_from[target] = name
            if _matches(target, rule.forbids) and not _matches(target, rule.allowed):
                chain: list[str] = []
                at: str | None = target
                while at is not None:
                    chain.append(at)
                    at = came_from[at]
                return chain[::-1]
            if target in graph:  # walk on through project modules only
                queue.append(target)
    return None


def violations(rule: Rule, graph: Mapping[str, list[Edge]]) -> list[str]:
    """One line per module that breaks the rule, naming the import (or the chain) at fault."""
    found: list[str] = []
    for name in sorted(graph):
        if not _matches(name, rule.applies) or _matches(name, rule.excluding):
            continue
        if rule.transitive:
            chain = _chain(graph, name, rule)
            if chain is not None:
                found.append(" -> ".join(chain))
            continue
        for edge in graph[name]:
            if _matches(edge.target, rule.forbids) and not _matches(edge.target, rule.allowed):
                found.append(f"{name} imports {edge.target} (line {edge.line})")
    return found


def domain_modules(sources: Mapping[str, Source]) -> list[str]:
    """The modules of bot/ outside the Discord side, as the table defines them."""
    return sorted(n for n in sources if _matches(n, ("bot", "bot.*")) and n not in DISCORD_SIDE)


# ---------------------------------------------------------------------------------- the project


@pytest.fixture(scope="module")
def project_graph() -> dict[str, list[Edge]]:
    return import_graph(project_sources())


@pytest.mark.parametrize("rule", LAYERS, ids=[rule.name for rule in LAYERS])
def test_the_project_keeps_the_layer_rule(rule: Rule, project_graph: dict[str, list[Edge]]) -> None:
    broken = violations(rule, project_graph)
    assert broken == [], f"layer rule broken: {rule.name}:\n  " + "\n  ".join(broken)


def test_the_table_names_modules_that_exist(project_graph: dict[str, list[Edge]]) -> None:
    # A renamed module would leave a row checking nothing.
    missing = [name for name in (*DISCORD_SIDE, *LEAVES) if name not in project_graph]
    assert missing == [], f"the layer table names modules that do not exist: {missing}"
    assert domain_modules(project_sources()), "no domain modules found"


def test_the_scan_sees_the_project_imports(project_graph: dict[str, list[Edge]]) -> None:
    # One edge of each form the project uses: a function-level import (the CLI starts discord.py
    # only when asked), a package import, a cog's import of a presentation module. If these
    # vanish, the scan reads nothing and every rule passes for nothing.
    edges = {(name, e.target) for name, targets in project_graph.items() for e in targets}
    assert ("bot.cli.run", "bot.client") in edges
    assert any(target == "bot.store" for _, target in edges)
    assert any(name.startswith("cogs.") and target.startswith("cogs._") for name, target in edges)


# ---------------------------------------------------------------------------------- the checker


def _graph(**modules: str) -> dict[str, list[Edge]]:
    """A synthetic project: keyword `bot__store__books` is module bot.store.books; a name ending
    in `__init__` is a package."""
    sources = {}
    for key, text in modules.items():
        parts = key.split("__")
        is_package = parts[-1] == "init"
        name = ".".join(parts[:-1] if is_package else parts)
        sources[name] = Source(name, textwrap.dedent(text), is_package)
    return import_graph(sources)


DOMAIN = LAYERS[1]
BASE = {"bot__init": "", "bot__client": "import discord\n", "bot__store__init": ""}


@pytest.mark.parametrize(
    ("module", "text"),
    [
        ("bot__workflow", "import bot.client\n"),
        ("bot__workflow", "from bot import client\n"),
        ("bot__workflow", "from bot.client import RemixBot\n"),
        ("bot__workflow", "import bot.client as c\n"),
        ("bot__store__books", "from .. import client\n"),
        ("bot__store__books", "from ..client import RemixBot\n"),
        ("bot__store__init", "from .. import client\n"),
        ("bot__workflow", "def later():\n    from bot import client\n"),
        (
            "bot__workflow",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import discord\n",
        ),
        ("bot__workflow", "from discord.ext import commands\n"),
        ("bot__workflow", "import cogs.remix\n"),
    ],
)
def test_the_checker_catches_each_import_form(module: str, text: str) -> None:
    graph = _graph(**{**BASE, module: text})
    name = module.replace("__init", "").replace("__", ".").rstrip(".")
    assert any(line.startswith(name) for line in violations(DOMAIN, graph)), text


def test_the_checker_follows_a_chain_through_project_modules() -> None:
    graph = _graph(
        bot__init="", bot__a="import bot.b\n", bot__b="from . import c\n", bot__c="import discord\n"
    )
    assert violations(DOMAIN, graph) == [
        "bot.a -> bot.b -> bot.c -> discord",
        "bot.b -> bot.c -> discord",
        "bot.c -> discord",
    ]


def test_the_checker_follows_a_parent_package() -> None:
    # Importing bot.store.books runs bot/store/__init__.py first.
    graph = _graph(
        bot__init="",
        bot__store__init="import discord\n",
        bot__store__books="X = 1\n",
        bot__workflow="from bot.store.books import X\n",
    )
    assert "bot.workflow -> bot.store.books -> bot.store -> discord" in violations(DOMAIN, graph)


def test_the_checker_leaves_the_discord_side_and_strings_alone() -> None:
    graph = _graph(
        **BASE,
        bot__extensions='DEFAULT_EXTENSIONS = ("cogs.remix",)\n',
        bot__cli__init="",
        bot__cli__run="def main():\n    from bot.client import RemixBot\n",
        bot__workflow="from bot.store import Store\n",
    )
    assert violations(DOMAIN, graph) == []
    assert violations(LAYERS[3], graph) == []


def test_the_checker_resolves_relative_imports() -> None:
    sources = {
        "bot": Source("bot", "", is_package=True),
        "bot.client": Source("bot.client", ""),
        "bot.store": Source("bot.store", "from . import books\nfrom .models import Job\n", True),
        "bot.store.books": Source(
            "bot.store.books", "from ..client import X\nfrom . import models\n"
        ),
        "bot.store.models": Source("bot.store.models", ""),
    }
    graph = import_graph(sources)
    assert [e.target for e in graph["bot.store"]] == ["bot.store.books", "bot.store.models"]
    assert [e.target for e in graph["bot.store.books"]] == ["bot.client", "bot.store.models"]
    too_far = Source("bot.store.models", "from ... import x\n")
    with pytest.raises(ValueError, match="beyond the top-level package"):
        resolve_imports(too_far, sources)


def test_the_checker_catches_cogs_importing_cogs_and_leaves_importing_the_domain() -> None:
    graph = _graph(
        bot__init="",
        bot__errors="",
        bot__settings="from bot.errors import SettingsError\nfrom bot.store import x\n",
        bot__store__init="",
        bot__client='EXT = "cogs.remix"\nimport cogs._ui\n',
        cogs__init="",
        cogs___ui="",
        cogs__remix="from cogs import _ui\nfrom . import other\n",
        cogs__other="from cogs.remix import Remix\n",
    )
    leaves, cogs, bot_cogs = LAYERS[0], LAYERS[2], LAYERS[3]
    assert violations(leaves, graph) == ["bot.settings imports bot.store (line 2)"]
    assert violations(cogs, graph) == [
        "cogs.other imports cogs.remix (line 1)",
        "cogs.remix imports cogs.other (line 2)",
    ]
    assert violations(bot_cogs, graph) == ["bot.client imports cogs._ui (line 2)"]


# ---------------------------------------------------------------------------------- at runtime

# Run in a fresh interpreter: a finder that refuses discord goes first on sys.meta_path, then
# each named module is imported; the failures are printed as JSON.
_NO_DISCORD = """
import importlib, importlib.abc, json, sys, traceback

class NoDiscord(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "discord" or name.startswith("discord."):
            raise ImportError(f"discord is not importable here ({name})")
        return None

sys.meta_path.insert(0, NoDiscord())
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed[name] = traceback.format_exception_only(exc)[-1].strip()
print(json.dumps(failed))
"""


def _import_without_discord(modules: list[str]) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", _NO_DISCORD, json.dumps(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_every_domain_module_imports_without_discord() -> None:
    modules = domain_modules(project_sources())
    # bot.client proves the finder works: it cannot import here.
    failed = _import_without_discord([*modules, "bot.client"])
    assert "discord is not importable here" in failed.pop("bot.client", "")
    assert failed == {}, "domain modules that need discord to import:\n" + "\n".join(
        f"  {name}: {error}" for name, error in failed.items()
    )

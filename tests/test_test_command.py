"""The README's test command stands on its own: CI runs exactly it, and on a fresh Debian machine
it installs the system packages the suite needs (scripts/test-postgres)."""

from __future__ import annotations

import glob
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = "python3 -m venv .venv && . .venv/bin/activate && "


def readme_test_command() -> str:
    """The one-line command in the README's "Install and run the tests" block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"Install and run the tests:\n\n```bash\n(.+?)\n```", text)
    assert block, "the README's test command block is gone"
    return block[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    command = readme_test_command()
    assert command.startswith(VENV)  # CI makes its own fresh virtual environment first
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command.removeprefix(VENV) in ci
    assert "scripts/test-postgres run " in command


def missing(tmp_path: Path, **env: str) -> list[str]:
    """What `scripts/test-postgres packages` says is missing, with no program on PATH."""
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    done = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "test-postgres"), "packages"],
        env={"PATH": str(empty), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_test_command_knows_the_debian_packages_it_needs(tmp_path: Path) -> None:
    postgres = [] if glob.glob("/usr/lib/postgresql/*/bin/initdb") else ["postgresql"]
    # No chromium on PATH: the dashboard's browser test needs Debian's.
    assert missing(tmp_path) == [*postgres, "chromium"]
    # TEST_CHROMIUM names the browser to use instead.
    assert missing(tmp_path, TEST_CHROMIUM="/opt/chromium/chrome") == postgres

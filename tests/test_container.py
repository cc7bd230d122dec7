"""The Dockerfile, checked without a Docker daemon: its stages parse, its first stage's wheel is
built the way the file says, installed into a fresh virtual environment, and the installed
`remixbot` starts (`--help`) and passes `remixbot check` against the fakes."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.cli.sync import sync_once
from tests.fakediscord.server import FakeDiscord
from tests.fakeremix import running_fake
from tests.fakeremix.helpers import fake_env
from tests.remixworld import world_settings

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stage:
    """One FROM … of the Dockerfile and its instructions, in order."""

    base: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        """The arguments of every `instruction` in this stage."""
        return [args for ins, args in self.steps if ins == instruction]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions by stage (line continuations joined, comments and the parser directive
    dropped), as Docker reads them."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        else:
            assert stages, f"{instruction} before any FROM"
            stages[-1].steps.append((instruction, " ".join(args.split())))
    return stages


def test_dockerfile_has_two_stages_a_non_root_user_a_healthcheck_and_labels() -> None:
    build, runtime = parse_dockerfile((ROOT / "Dockerfile").read_text())
    assert build.name == "build" and build.base.startswith("python:3.11")
    assert runtime.base.endswith("-slim")
    assert any("pip wheel" in run for run in build.all("RUN"))
    assert any(copy.startswith("--from=build ") for copy in runtime.all("COPY"))
    # Only the wheel reaches the runtime stage: no source tree is copied into it.
    assert all(c.startswith("--from=build ") for c in runtime.all("COPY"))
    [user] = runtime.all("USER")
    assert user not in ("root", "0")
    assert any("useradd --system --uid 10001" in r and user in r for r in runtime.all("RUN"))
    [health] = runtime.all("HEALTHCHECK")
    assert '"bot.web.healthcheck"' in health and "--interval=" in health
    labels = " ".join(runtime.all("LABEL"))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert "REMIXBOT_DATA_DIR=/data" in " ".join(runtime.all("ENV"))
    assert runtime.all("ENTRYPOINT") == ['["remixbot"]'] and runtime.all("CMD") == ['["run"]']


def test_compose_example_has_the_volume_grace_period_env_file_and_port() -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert re.search(r"^\s+env_file: \.env$", text, re.M)
    assert re.search(r"^\s+stop_grace_period: (\d+)s$", text, re.M)
    grace = int(re.search(r"stop_grace_period: (\d+)s", text).group(1))  # type: ignore[union-attr]
    from bot.services import DRAIN_SECONDS

    assert grace > DRAIN_SECONDS  # the drain fits inside the grace period
    assert "remixbot-data:/data" in text
    assert '"127.0.0.1:8080:8080"' in text and 'REMIXBOT_HTTP_PORT: "8080"' in text


async def run(*cmd: str, cwd: Path, env: dict[str, str], within: float = 300) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        proc.kill()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _base_env() -> dict[str, str]:
    """The environment of a fresh shell: no PYTHONPATH (nothing from this checkout leaks in)."""
    keep = ("PATH", "HOME", "LANG", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")
    return {k: os.environ[k] for k in keep if k in os.environ}


@pytest.mark.timeout(900)
async def test_the_wheel_the_dockerfile_builds_installs_and_passes_check(tmp_path: Path) -> None:
    build, runtime = parse_dockerfile((ROOT / "Dockerfile").read_text())
    src = tmp_path / "src"
    src.mkdir()
    # The build stage's COPY lines, file by file, into its WORKDIR (here: src/).
    for copy in build.all("COPY"):
        *sources, _dest = shlex.split(copy)
        for name in sources:
            item = ROOT / name
            if item.is_dir():
                shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(item, src / name)
    wheels = tmp_path / "wheels"
    env = _base_env()
    # The build stage's RUN lines, with its /wheels folder under tmp_path.
    for step in build.all("RUN"):
        command = step.replace("/wheels", str(wheels)).replace(
            "pip ", f"{sys.executable} -m pip ", 1
        )
        code, out = await run("sh", "-c", command, cwd=src, env=env)
        assert code == 0, out
    [_wheel] = wheels.glob("remixbot-*.whl")  # exactly one wheel was built

    # The runtime stage installs that wheel (and its dependencies) into a fresh environment.
    venv = tmp_path / "venv"
    code, out = await run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path, env=env)
    assert code == 0, out
    installs = [r for r in runtime.all("RUN") if "pip install" in r]
    assert installs
    # The runtime stage's install line, with its /wheels folder under tmp_path and this venv's pip.
    install = (
        installs[0]
        .split(" && ")[0]
        .replace("/wheels", str(wheels))
        .replace("pip install", f"{venv / 'bin' / 'python'} -m pip install --quiet", 1)
    )
    code, out = await run("sh", "-c", install, cwd=tmp_path, env=env)
    assert code == 0, out
    # HEIC support comes with the image (the [heif] extra), so iPhone photos are not refused.
    code, out = await run(
        str(venv / "bin" / "python"),
        "-c",
        "from bot.intake.formats import heif_available; assert heif_available()",
        cwd=tmp_path,
        env=env,
        within=60,
    )
    assert code == 0, out

    home = tmp_path / "home"  # an empty working folder: no .env, no checkout to import from
    home.mkdir()
    remixbot = str(venv / "bin" / "remixbot")
    code, out = await run(remixbot, "--help", cwd=home, env=env, within=60)
    assert code == 0 and "check" in out and "backup" in out and "run" in out, out
    code, where = await run(
        str(venv / "bin" / "python"),
        "-c",
        "import bot, cogs; print(bot.__file__, cogs.__file__)",
        cwd=home,
        env=env,
        within=60,
    )
    assert code == 0 and str(ROOT) not in where and str(venv) in where, where

    code, out = await run(
        str(venv / "bin" / "python"), "-m", "bot.web.healthcheck", cwd=home, env=env, within=60
    )
    assert code == 0 and "off" in out  # the HEALTHCHECK with the endpoint off

    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        await sync_once(world_settings(d, r, data))
        check_env = {**env, **fake_env(r), **d.env(), "REMIXBOT_DATA_DIR": str(data)}
        code, out = await run(remixbot, "check", cwd=home, env=check_env, within=120)
        assert code == 0, out
        assert "All checks passed." in out

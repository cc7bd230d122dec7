"""What a new admin meets at the terminal, through the real `remixbot` command in a subprocess:
dry runs that refuse what real runs refuse, `.env` files as people write them, JSON on every
failure, quiet broken pipes, and `forget` asking first."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.intake import ACCEPTED
from bot.store import QuotaDefaults, Store
from tests.fakeremix import API_KEY, FakeRemix
from tests.fakeremix.helpers import encoded, fake_env
from tests.store_helpers import new_job

# `pip install -e .` puts the console script beside the interpreter.
REMIXBOT = Path(sys.executable).with_name("remixbot")
TIMEOUT = 60


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REMIXBOT_", "DISCORD_"))}
    env.update(extra or {})
    return env


def remixbot(
    *args: str, cwd: Path, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run the installed `remixbot` command without a terminal (stdin is /dev/null)."""
    assert REMIXBOT.exists(), "the remixbot command is installed with the package"
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [str(REMIXBOT), *args],
        cwd=cwd,  # no stray .env from the checkout
        env=_env(env),
        stderr=subprocess.PIPE,
        text=True,
        timeout=TIMEOUT,
        **kwargs,
    )


async def aremixbot(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """The same, without blocking the event loop (the fake remix server runs on it)."""
    proc = await asyncio.create_subprocess_exec(
        str(REMIXBOT),
        *args,
        cwd=cwd,
        env=_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    assert API_KEY not in out.decode() + err.decode()
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(encoded("PNG", size=(160, 120)).data)
    return path


# --- 1. --dry-run checks what the real run checks ---------------------------------------------

REFUSALS = [
    ("ideogram", ["--model", "V_3"], "model cannot be chosen on the ideogram backend"),
    ("ideogram", ["--style-type", "ANIME"], "style_type must be one of AUTO, GENERAL"),
    ("runware", ["--seed", "0"], "seed must be from 1 to 2147483647 on Runware, not 0."),
    ("ideogram-legacy", ["--rendering-speed", "TURBO"], "rendering_speed cannot be used"),
    ("task-proxy", ["--model", "V_3"], "model cannot be chosen on the task-proxy backend"),
]


@pytest.mark.parametrize(("backend", "options", "sentence"), REFUSALS)
async def test_dry_run_refuses_what_the_real_run_refuses(
    fake: FakeRemix, photo: Path, tmp_path: Path, backend: str, options: list[str], sentence: str
) -> None:
    env = fake_env(fake, backend)
    args = ["remix", str(photo), "--prompt", "a cat", "--out", str(tmp_path / "out"), *options]
    real = await aremixbot(*args, cwd=tmp_path, env=env)
    env.pop("REMIXBOT_API_KEY")  # a dry run needs no key
    dry = await aremixbot(*args, "--dry-run", cwd=tmp_path, env=env)
    assert real[0] == dry[0] == 2
    assert sentence in real[2]
    refusal = [line for line in dry[2].splitlines() if "note:" not in line]
    assert refusal == real[2].splitlines()  # the same sentence, word for word
    assert dry[1] == ""
    assert fake.api_requests() == []  # refused before anything was sent, both times


def _images_as_words(value: Any) -> Any:
    """Any body with each image (file part, data URI, or the dry run's description) a word."""
    if isinstance(value, dict):
        if "bytes" in value and ("file" in value or "inline" in value):
            return "image"
        return {k: _images_as_words(v) for k, v in value.items() if k != "taskUUID"}
    if isinstance(value, list):
        return [_images_as_words(v) for v in value]
    if isinstance(value, str) and value.startswith("data:image/"):
        return "image"
    return value


def _sent(recorded: Any) -> Any:
    """What the fake received, in the dry run's shape (a JSON body, or fields by name)."""
    if not (recorded.fields or recorded.files):
        return _images_as_words(recorded.json)
    fields: dict[str, Any] = {}
    for name, values in recorded.fields.items():
        types = recorded.field_types[name]
        parsed = [
            json.loads(v) if t == "application/json" else v
            for v, t in zip(values, types, strict=True)
        ]
        fields[name] = parsed[0] if len(parsed) == 1 else parsed
    for name in recorded.files:
        fields[name] = "image"
    return _images_as_words(fields)


@pytest.mark.parametrize("backend", ["ideogram", "ideogram-legacy", "runware", "task-proxy"])
async def test_dry_run_shows_exactly_what_the_real_run_sends(
    fake: FakeRemix, photo: Path, tmp_path: Path, backend: str
) -> None:
    options = ["--prompt", "a cat", "--seed", "41", "--negative-prompt", "dogs"]
    if backend == "ideogram-legacy":
        options += ["--model", "V_2"]  # negative prompts are a V_1/V_2 option there
    options += ["--palette", "EMBER"] if backend != "runware" else ["--magic-prompt", "OFF"]
    env = fake_env(fake, backend)
    code, out, err = await aremixbot(
        "remix", str(photo), *options, "--dry-run", "--json", cwd=tmp_path, env=env
    )
    assert code == 0, err
    shown = json.loads(out)
    assert fake.api_requests() == []
    code, _, err = await aremixbot(
        "remix", str(photo), *options, "--out", str(tmp_path / "o"), cwd=tmp_path, env=env
    )
    assert code == 0, err
    (real,) = fake.api_requests()
    assert shown["request"]["url"] == fake.base_url + real.path
    assert _images_as_words(shown["request"]["body"]) == _sent(real)
    # The aspect ratio (auto-picked 4x3 here) appears once in the whole report.
    assert out.count('"aspect_ratio"') == (0 if backend == "runware" else 1)  # runware: width


async def test_dry_run_text_names_every_option_sent(photo: Path, tmp_path: Path) -> None:
    proc = remixbot(
        "remix",
        str(photo),
        "--prompt",
        "a cat",
        "--style-preset",
        "watercolor",
        "--dry-run",
        cwd=tmp_path,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr
    assert lines[0] == "Dry run: nothing was sent and no quota was used."
    sent = dict(line.split(None, 1) for line in lines[lines.index("would send:") + 1 :])
    assert sent["prompt"] == "a cat" and sent["style_preset"] == "WATERCOLOR"
    assert sent["aspect_ratio"] == "4x3" and proc.stdout.count("4x3") == 1
    assert "REMIXBOT_API_KEY is not set" in proc.stderr


# --- 5. name the thing that is wrong ---------------------------------------------------------


def test_refusals_name_the_file_and_the_way_out(photo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "brush.png"
    bad.write_text("not an image")
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(encoded("PNG", size=(16, 16)).data)
    ref = remixbot(
        "remix", str(photo), "--prompt", "x", "--style-ref", str(tiny), "--style-ref", str(bad),
        "--dry-run", cwd=tmp_path,
    )  # fmt: skip
    assert ref.returncode == 2
    assert (
        ref.stderr
        == f"remixbot: --style-ref {bad}: That file is not an image; send a JPEG, PNG or WebP.\n"
    )
    preset = remixbot(
        "remix", str(photo), "--prompt", "x", "--style-preset", "WATERCOLOUR", "--dry-run",
        cwd=tmp_path,
    )  # fmt: skip
    assert preset.returncode == 2
    assert "did you mean WATERCOLOR? `remixbot styles` lists them." in preset.stderr
    styles = remixbot("styles", "--json", cwd=tmp_path)
    assert "WATERCOLOR" in json.loads(styles.stdout)["style-preset"]
    small = remixbot("remix", str(tiny), "--prompt", "x", "--dry-run", cwd=tmp_path)
    size = tiny.stat().st_size
    assert f"PNG 16x16, {size} bytes" in small.stdout and "0 KB" not in small.stdout
    helped = remixbot("remix", "--help", cwd=tmp_path).stdout
    names = {"WEBP": "WebP"}
    assert all(names.get(f, f) in helped for f in ACCEPTED)


# --- 2. .env read the way people write it ----------------------------------------------------


def test_dotenv_as_documented_with_inline_comments(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# Remixbot\n"
        "REMIXBOT_DATA_DIR=./data          # the database, stored inputs and command-sync.json\n"
        'export REMIXBOT_DEFAULT_LIMIT="7"   # seven a day\n'
        "REMIXBOT_RESET_HOUR='3'\n"
        "COMPOSE_PROJECT_NAME=remixbot     # another tool's key: left alone\n"
    )
    started = remixbot("db", "init", cwd=tmp_path)  # the books go where .env says
    assert started.returncode == 0, started.stderr
    proc = remixbot("quota", "policies", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    policies = json.loads(proc.stdout)
    assert (policies["default_limit"], policies["reset_hour"]) == (7, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "data"]
    assert (tmp_path / "data" / "remixbot.sqlite3").is_file()


def test_every_settings_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "REMIXBOT_DATA_DIR=./data\n"
        "REMIXBOT_DEFALT_LIMIT=3\n"
        "DISCORD_TOKEN sekrit-token-value\n"
        "REMIXBOT_RESET_HOUR=25\n"
    )
    proc = remixbot("run", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "remixbot: Unknown setting 'REMIXBOT_DEFALT_LIMIT' in .env, line 2; did you mean"
        " 'REMIXBOT_DEFAULT_LIMIT'?",
        "remixbot: Cannot read .env, line 3: write each setting as NAME=value (quote a value"
        " with spaces, start a comment with #).",
        "remixbot: REMIXBOT_RESET_HOUR must be from 0 to 23, not 25.",
        "remixbot: DISCORD_TOKEN is not set; copy the bot token from the Discord Developer Portal.",
        "remixbot: REMIXBOT_API_KEY is not set; put the backend's API key in the environment or"
        " .env.",
    ]
    assert "sekrit" not in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()  # nothing started


def test_a_misspelt_setting_in_the_environment_is_reported_like_one_in_dotenv(
    tmp_path: Path,
) -> None:
    proc = remixbot(
        "check", cwd=tmp_path, env={"REMIXBOT_BACKEND": "demo", "REMIXBOT_DEFALT_LIMIT": "4"}
    )
    assert proc.returncode != 0
    assert (
        "Unknown setting 'REMIXBOT_DEFALT_LIMIT' in the environment; did you mean"
        " 'REMIXBOT_DEFAULT_LIMIT'?" in proc.stdout
    )
    proc = remixbot("quota", "policies", cwd=tmp_path, env={"REMIXBOT_DEFALT_LIMIT": "4"})
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "remixbot: Unknown setting 'REMIXBOT_DEFALT_LIMIT' in the environment; did you mean"
        " 'REMIXBOT_DEFAULT_LIMIT'?\n"
    )


# --- 3. --json means JSON, always ------------------------------------------------------------

FAILURES = [
    (["remix", "missing.png", "--prompt", "x", "--dry-run"], {}, "invalid_image", 2),
    (["remix", "photo.png", "--prompt", "x", "--seed", "x", "--dry-run"], {}, "invalid_request", 2),
    (["remix", "photo.png", "--prompt", "x"], {}, "settings", 2),  # no API key
    (["quota", "set-default", "lots"], {}, "usage", 2),
    (["quota", "show", "cli"], {"REMIXBOT_RESET_HOUR": "99"}, "settings", 2),
    (["jobs", "show", "99"], {}, "job_not_found", 2),
    (["forget", "5"], {}, "invalid_request", 2),  # no terminal to confirm on
    (["styles", "--bogus"], {}, "usage", 2),
    (["stats"], {"REMIXBOT_DATA_DIR": "elsewhere"}, "books_missing", 2),
]


@pytest.mark.parametrize(("args", "env", "kind", "code"), FAILURES)
def test_json_commands_answer_json_on_failure(
    photo: Path, tmp_path: Path, args: list[str], env: dict[str, str], kind: str, code: int
) -> None:
    assert remixbot("db", "init", cwd=tmp_path).returncode == 0  # books in ./data
    proc = remixbot(*args, "--json", cwd=tmp_path, env=env)
    assert proc.returncode == code
    answer = json.loads(proc.stdout)
    assert answer == {"error": answer["error"], "kind": kind, "exit_code": code}
    assert f"remixbot: {answer['error']}" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_quota_refusal_and_partial_failure_are_json(
    fake: FakeRemix, photo: Path, tmp_path: Path
) -> None:
    args = ["remix", str(photo), "--prompt", "x", "--out", str(tmp_path / "o"), "--json"]
    env = fake_env(fake, "ideogram", REMIXBOT_DEFAULT_LIMIT="0")
    code, out, err = await aremixbot(*args, cwd=tmp_path, env=env)
    assert code == 3 and json.loads(out)["kind"] == "quota_exceeded", err
    fake.unsafe = {0}  # the backend withholds the only image: nothing saved, exit 1
    code, out, _ = await aremixbot(*args, cwd=tmp_path, env=fake_env(fake, "ideogram"))
    summary = json.loads(out)
    assert code == 1 and (summary["kind"], summary["exit_code"], summary["withheld"]) == (
        "nothing_delivered",
        1,
        1,
    )


BROKEN_PIPE = [
    ["styles"],
    ["remix", "--help"],
    ["quota", "policies", "--json"],
    ["remix", "photo.png", "--prompt", "x", "--dry-run", "--json"],
]


@pytest.mark.parametrize("args", BROKEN_PIPE)
def test_a_reader_that_left_ends_quietly(photo: Path, tmp_path: Path, args: list[str]) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write meets EPIPE
    try:
        proc = remixbot(*args, cwd=tmp_path, stdout=write)
    finally:
        os.close(write)
    # 1 when the failed write reached us; argparse's --help swallows it and exits 0.
    assert proc.returncode in (0, 1)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_piping_into_head(photo: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        f"'{REMIXBOT}' styles | head -n 1",
        shell=True,
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.stdout.startswith("Style presets") and proc.stderr == ""


# --- 4. commands say what they did -----------------------------------------------------------


@pytest.fixture
def member_jobs(tmp_path: Path) -> Path:
    """A data directory in which user 5 has a delivered job with a stored input."""
    data = tmp_path / "data"

    async def setup() -> None:
        async with await Store.open(data / "remixbot.sqlite3", defaults=QuotaDefaults()) as s:
            key = await s.inputs.put(b"a stored input image")
            job = await s.submit_job(new_job(user_id=5, guild_id=None, images=2, input_key=key))
            await s.settle(job.id, delivered=2, billed=2)

    data.mkdir()
    asyncio.run(setup())
    return data


def _used(tmp_path: Path) -> int:
    shown = remixbot("quota", "show", "5", "--json", cwd=tmp_path)
    return json.loads(shown.stdout)["used"]


def _with_terminal(tmp_path: Path, answer: str) -> subprocess.CompletedProcess[str]:
    """`remixbot forget 5` with a terminal on stdin that answers `answer`."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")
        return remixbot("forget", "5", cwd=tmp_path, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


def test_forget_asks_first_and_says_what_stays(member_jobs: Path, tmp_path: Path) -> None:
    refused = remixbot("forget", "5", cwd=tmp_path)
    assert refused.returncode == 2
    assert "add --yes to confirm" in refused.stderr
    assert _used(tmp_path) == 2

    declined = _with_terminal(tmp_path, "n")
    assert declined.returncode == 1, declined.stderr
    assert "Deletes:" in declined.stderr and "Stays:" in declined.stderr
    assert "Forget user 5? [y/N]" in declined.stderr
    assert declined.stderr.rstrip().endswith("remixbot: Nothing was forgotten.")
    assert _used(tmp_path) == 2 and len(list((member_jobs / "inputs").rglob("*"))) > 0

    confirmed = _with_terminal(tmp_path, "y")
    assert confirmed.returncode == 0, confirmed.stderr
    assert confirmed.stdout.strip() == (
        "Forgot 5: 1 job and 2 quota ledger rows anonymised, 1 stored image deleted."
        " Their allowance for this period starts over."
    )
    assert _used(tmp_path) == 0  # what the output warned about
    again = remixbot("forget", "5", "--yes", "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["jobs"] == 0


def test_invite_without_a_token_points_at_client_id(tmp_path: Path) -> None:
    proc = remixbot("invite", cwd=tmp_path)
    assert proc.returncode == 2 and "--client-id ID" in proc.stderr
    proc = remixbot("invite", "--client-id", "123", cwd=tmp_path)
    assert proc.returncode == 0 and "client_id=123" in proc.stdout
    # A pasted name or token is refused saying what the id is and where to find it.
    proc = remixbot("invite", "--client-id", "my-bot", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines()[-1] == (
        "remixbot: invite: argument --client-id: must be the Application ID (digits) from the"
        " General Information page of the Developer Portal, not 'my-bot'."
    )

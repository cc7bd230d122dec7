"""What a new admin reads in the terminal: a dry run on the demo backend, HEIC in the help and in
its refusal, no work folder left behind, file-size refusals that name the file like the others,
PostgreSQL out of reach in one sentence, the JSON of an unreachable backend, `--version`.

In this process through `bot.cli.main` (as `remixbot ARGS…`), or as the installed command."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from bot.intake import formats
from bot.store.pg import connect_reason
from tests import imagecorpus as corpus
from tests.fakeremix import FakeRemix
from tests.fakeremix.helpers import encoded, fake_env

ROOT = Path(__file__).resolve().parents[1]
REMIXBOT = Path(sys.executable).with_name("remixbot")

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_settings: None) -> None:
    """Every command runs in tmp_path with only the settings its call gives."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(encoded("PNG", size=(160, 120)).data)
    return path


def without_heif(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on an installation without the extra: pillow-heif cannot be imported, its opener was
    never registered (the registration is Pillow's, and stays; the sniffer refuses first)."""
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    monkeypatch.setattr(formats, "_heif_registered", None)


# --- a dry run on the demo backend --------------------------------------------------------------


def test_a_dry_run_on_the_demo_backend_describes_the_image_and_sends_nothing(
    run: Run, photo: Path, tmp_path: Path
) -> None:
    code, out, err = run("remix", str(photo), "--prompt", "x", "--dry-run", REMIXBOT_BACKEND="demo")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "Dry run: nothing was sent and no quota was used.",
        "backend: demo (local)",
        out.splitlines()[2],
        "The demo backend makes its images on this machine, so nothing would be sent anywhere.",
    ]
    assert out.splitlines()[2].startswith("image:   PNG 160x120, ")

    code, out, err = run(
        "remix", str(photo), "--prompt", "x", "--dry-run", "--json", REMIXBOT_BACKEND="demo"
    )
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert (report["dry_run"], report["backend"], report["request"]) == (True, "demo", None)
    assert (report["image"]["width"], report["image"]["height"]) == (160, 120)
    assert report["note"].startswith("The demo backend makes its images on this machine")
    assert list(tmp_path.iterdir()) == [photo]  # no books, no output folder

    # The demo backend's own checks still refuse what its real run refuses (exit 2).
    code, _, err = run(
        "remix", str(photo), "--prompt", "x", "--mask", str(photo), "--dry-run",
        REMIXBOT_BACKEND="demo",
    )  # fmt: skip
    assert code == 2 and "A mask cannot be used on the demo backend" in err


# --- HEIC in the help and in its refusal --------------------------------------------------------


def _image_help(run: Run) -> str:
    code, out, _ = run("remix", "--help")
    assert code == 0
    return " ".join(out.split())  # argparse wraps the help text


def test_the_help_lists_heic_when_pillow_heif_reads_it(run: Run) -> None:
    assert formats.heif_available()  # the test extras install it
    assert "input image: JPEG, PNG, WebP, GIF, BMP, TIFF, AVIF or HEIC," in _image_help(run)


def test_without_the_extra_the_terminal_says_installation_not_server(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heic = tmp_path / "IMG_0001.heic"
    heic.write_bytes(corpus.heic())  # made with pillow-heif's encoder, before it goes
    without_heif(monkeypatch)
    assert "input image: JPEG, PNG, WebP, GIF, BMP, TIFF or AVIF," in _image_help(run)
    code, out, err = run("remix", str(heic), "--prompt", "x", "--dry-run")
    assert (code, out) == (2, "")
    # The log's warning (on stderr too) tells the admin how to accept them; then the refusal.
    warning, refusal = err.splitlines()
    assert warning.endswith(
        "WARNING bot.intake.formats: a HEIC upload was refused: to accept them,"
        " pip install '.[heif]'"
    )
    assert refusal == (
        f"remixbot: {heic}: That file is a HEIC, which this installation cannot read; send a"
        " JPEG, PNG or WebP."
    )


def test_every_place_names_the_same_install_command_for_heic() -> None:
    assert formats.HEIF_EXTRA == "pip install '.[heif]'"
    for doc in ("README.md", "docs/intake.md"):
        text = (ROOT / doc).read_text(encoding="utf-8")
        assert formats.HEIF_EXTRA in text, doc
        assert "remixbot[heif]" not in text, doc


# --- the output folder holds the results only ---------------------------------------------------


def test_a_remix_leaves_no_work_folder_in_the_output_folder(
    run: Run, photo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["remix", str(photo), "--prompt", "x", "--out", str(out), "--num-images", "2"]
    code, stdout, err = run(*args, REMIXBOT_BACKEND="demo")
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 4 and all(n.startswith("remix-") for n in names), names
    assert sorted(stdout.split()) == sorted(str(out / n) for n in names if n.endswith(".png"))


async def test_a_failed_remix_leaves_no_output_folder_it_made(
    fake: FakeRemix, photo: Path, tmp_path: Path, run: Run
) -> None:
    # The image comes back damaged: downloaded into the work folder, then kept for the admin
    # in the data folder, never saved into --out.
    fake.damaged = {0}
    out = tmp_path / "out"
    argv = ["remix", str(photo), "--prompt", "x", "--out", str(out)]
    code, _, err = await asyncio.to_thread(run, *argv, **fake_env(fake))
    assert code == 1 and "damaged or truncated" in err
    assert not await asyncio.to_thread(out.exists)
    # An output folder that was there before stays, with what was in it.
    await asyncio.to_thread(out.mkdir)
    code, _, _ = await asyncio.to_thread(run, *argv, **fake_env(fake))
    assert code == 1 and await asyncio.to_thread(lambda: list(out.iterdir())) == []


async def test_an_unreachable_backend_ends_rejected_in_the_json_summary(
    photo: Path, run: Run
) -> None:
    # Nothing listens there: refused before anything was sent, so never run and never billed.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["remix", str(photo), "--prompt", "x", "--json"]
    env = {"REMIXBOT_BACKEND_URL": f"http://127.0.0.1:{port}", "REMIXBOT_API_KEY": "k"}
    code, out, _ = await asyncio.to_thread(run, *argv, **env)
    summary = json.loads(out)
    assert code == 1
    assert (summary["exit"], summary["kind"], summary["exit_code"]) == (
        "rejected",
        "remix_unavailable",
        1,
    )
    assert summary["error"].endswith("The `cli` quota was not charged.")


# --- a file over the size limit is named like every other refusal -------------------------------


def test_the_size_refusal_starts_with_the_path_like_the_other_refusals(
    run: Run, photo: Path, tmp_path: Path
) -> None:
    big = tmp_path / "sub" / "big.png"
    big.parent.mkdir()
    big.write_bytes(encoded("PNG", size=(400, 300)).data)
    size = big.stat().st_size
    assert size > 1024
    env = {"REMIXBOT_MAX_INPUT_BYTES": "1024"}
    shown = f"{size / 1e3:.0f} KB"
    code, _, err = run("remix", str(big), "--prompt", "x", "--dry-run", **env)
    assert (code, err) == (
        2,
        f"remixbot: {big}: That file is {shown}; the limit is 1 KB (REMIXBOT_MAX_INPUT_BYTES).\n",
    )
    small = tmp_path / "small.png"
    small.write_bytes(encoded("PNG", size=(32, 32)).data)
    code, _, err = run(
        "remix", str(small), "--prompt", "x", "--style-ref", str(big), "--dry-run", **env
    )
    assert code == 2 and err.startswith(f"remixbot: --style-ref {big}: That file is {shown};")
    code, _, err = run(
        "remix", str(small), "--prompt", "x", "--mask", str(big), "--dry-run",
        REMIXBOT_BACKEND="ideogram-edit", REMIXBOT_BACKEND_URL="http://127.0.0.1:9", **env,
    )  # fmt: skip
    assert code == 2 and err.startswith(f"remixbot: --mask {big}: That file is {shown};")


# --- PostgreSQL out of reach -----------------------------------------------------------------


# psycopg's own texts (captured from psycopg 3 with libpq 16): a reason, then libpq's hint.
PSYCOPG_TEXTS = [
    (
        'connection failed: connection to server at "127.0.0.1", port 9 failed: Connection'
        " refused\n\tIs the server running on that host and accepting TCP/IP connections?",
        'connection to server at "127.0.0.1", port 9 failed: Connection refused',
    ),
    (
        'connection is bad: connection to server on socket "/tmp/x/.s.PGSQL.5432" failed: No'
        " such file or directory\n\tIs the server running locally and accepting connections on"
        " that socket?",
        'connection to server on socket "/tmp/x/.s.PGSQL.5432" failed: No such file or directory',
    ),
    (
        'connection failed: connection to server at "db", port 5432 failed: FATAL:  password'
        ' authentication failed for user "remixbot"',
        'connection to server at "db", port 5432 failed: FATAL: password authentication failed'
        ' for user "remixbot"',
    ),
]


@pytest.mark.parametrize(("text", "reason"), PSYCOPG_TEXTS)
def test_psycopg_connection_errors_become_one_clause(text: str, reason: str) -> None:
    assert connect_reason(Exception(text)) == reason


def test_postgresql_out_of_reach_is_one_sentence(run: Run) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://remixbot:secret-pw@127.0.0.1:{port}/remixbot"
    code, out, err = run("quota", "policies", REMIXBOT_DATABASE_URL=url)
    assert (code, out) == (1, "")
    assert err == (
        f"remixbot: Could not reach the job database at postgresql://remixbot@127.0.0.1:{port}"
        f'/remixbot (connection to server at "127.0.0.1", port {port} failed: Connection'
        " refused); check REMIXBOT_DATABASE_URL and that the server is running.\n"
    )


# --- --version --------------------------------------------------------------------------------


def test_version_prints_the_installed_version(run: Run, tmp_path: Path) -> None:
    version = metadata.version("remixbot")
    assert run("--version") == (0, f"remixbot {version}\n", "")
    proc = subprocess.run(
        [str(REMIXBOT), "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"remixbot {version}\n", "")

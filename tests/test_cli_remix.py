"""`remixbot remix` end to end: `python -m bot remix …` as a subprocess against the fake."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.cli import main
from tests.fakeremix import API_KEY, FakeRemix
from tests.fakeremix.helpers import encoded, fake_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "input.png"
    path.write_bytes(encoded("PNG", size=(120, 80)).data)
    return path


async def cli(
    fake: FakeRemix, backend: str, args: list[str], tmp_path: Path, **env: str
) -> tuple[int, str, str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("REMIXBOT_", "DISCORD_"))}
    full_env.update(fake_env(fake, backend, **env))
    full_env["PYTHONPATH"] = str(ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "remix",
        *args,
        cwd=tmp_path,  # no stray .env; data/ would land here
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    stdout, stderr = out.decode(), err.decode()
    assert API_KEY not in stdout + stderr
    return proc.returncode, stdout, stderr


async def cli_inproc(
    fake: FakeRemix,
    backend: str,
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    **env: str,
) -> tuple[int, str, str]:
    """The same command in this process (in a thread: it runs its own event loop); faster."""
    for key in [k for k in os.environ if k.startswith(("REMIXBOT_", "DISCORD_"))]:
        monkeypatch.delenv(key)
    for key, value in fake_env(fake, backend, **env).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    code = await asyncio.to_thread(main, ["remix", *args])
    captured = capsys.readouterr()
    assert API_KEY not in captured.out + captured.err
    return code, captured.out, captured.err


def saved(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.suffix in (".png", ".jpg", ".webp"))


@pytest.mark.parametrize(
    ("backend", "extra", "path"),
    [
        (
            "ideogram",
            ["--style-preset", "watercolor", "--palette", "ember"],
            "/v1/ideogram-v3/remix",
        ),
        ("ideogram-legacy", ["--model", "V_2", "--negative-prompt", "dogs"], "/remix"),
        ("runware", ["--model", "ideogram:4@2", "--rendering-speed", "turbo"], "/v1"),
        ("task-proxy", ["--magic-prompt", "off"], "/ideogram/v1/ideogram-v3/remix"),
    ],
)
async def test_each_backend_end_to_end(
    fake: FakeRemix, source: Path, tmp_path: Path, backend: str, extra: list[str], path: str
) -> None:
    out = tmp_path / "out"
    args = [
        str(source),
        "--prompt",
        "a cat",
        "--out",
        str(out),
        "--num-images",
        "2",
        "--seed",
        "41",
    ]
    code, stdout, stderr = await cli(
        fake, backend, [*args, "--aspect-ratio", "16x9", *extra], tmp_path
    )
    assert code == 0, stderr
    assert fake.api_requests()[0].path == path
    files = saved(out)
    assert len(files) == 2
    assert stdout.split() == [str(f) for f in files]
    assert "saved 2 of 2 image(s)" in stderr
    for f in files:
        sidecar = json.loads(f.with_suffix(".json").read_text())
        assert sidecar["backend"] == backend and sidecar["safe"] is True
        assert sidecar["file"] == f.name
        assert sidecar["request"]["prompt"] == "a cat" and sidecar["request"]["seed"] == 41
        assert f.read_bytes()[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb")
    if backend != "task-proxy":  # the task envelope carries no seed or resolution
        seeds = sorted(json.loads(f.with_suffix(".json").read_text())["seed"] for f in files)
        assert seeds == [41, 42]
        assert all(json.loads(f.with_suffix(".json").read_text())["resolution"] for f in files)


async def test_json_summary_style_refs_and_withheld(
    fake: FakeRemix, source: Path, tmp_path: Path
) -> None:
    ref = tmp_path / "style.jpg"
    ref.write_bytes(encoded("JPEG").data)
    fake.unsafe = {1}
    out = tmp_path / "out"
    args = [str(source), "--prompt", "x", "--out", str(out), "--num-images", "3", "--style-ref", str(ref),
            "--palette-color", "#b470b3:0.5", "--palette-color", "fff", "--json"]  # fmt: skip
    code, stdout, stderr = await cli(fake, "ideogram", args, tmp_path)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert (summary["billed"], summary["withheld"], summary["failed_downloads"]) == (3, 1, 0)
    assert len(summary["images"]) == 2 and len(saved(out)) == 2
    rec = fake.last()
    assert rec.files["style_reference_images"][0].format == "JPEG"
    assert json.loads(rec.fields["color_palette"][0])["members"][1] == {"color_hex": "#fff"}
    assert "1 withheld by the safety check" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-weight", "150"], "image_weight must be from 1 to 100, not 150."),
        (["--aspect-ratio", "16x9", "--resolution", "1024x1024"], "cannot both be given"),
        (["--style-code", "nothex"], "style code must be 8 hexadecimal digits"),
        (["--model", "V_2"], "model cannot be chosen on the ideogram backend"),
    ],
)
async def test_invalid_options_exit_2(
    fake: FakeRemix,
    source: Path,
    tmp_path: Path,
    args: list[str],
    message: str,
    monkeypatch,
    capsys,
) -> None:
    argv = [str(source), "--prompt", "x", "--out", str(tmp_path / "o"), *args]
    code, stdout, stderr = await cli_inproc(fake, "ideogram", argv, tmp_path, monkeypatch, capsys)
    assert code == 2
    assert message in stderr and stdout == ""
    assert fake.api_requests() == []


async def test_invalid_images_exit_2(fake: FakeRemix, tmp_path: Path, monkeypatch, capsys) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    psd = tmp_path / "scan.png"  # the name lies; the content decides
    psd.write_bytes(b"8BPS\x00\x01" + b"\x00" * 64)
    for path, message in [
        (text, "That file is not an image; send a JPEG, PNG or WebP."),
        (psd, "That file is a Photoshop (PSD) file; send a JPEG, PNG or WebP."),
        (tmp_path / "missing.png", "does not exist."),
    ]:
        argv = [str(path), "--prompt", "x", "--out", str(tmp_path / "o")]
        code, _, stderr = await cli_inproc(fake, "ideogram", argv, tmp_path, monkeypatch, capsys)
        assert code == 2 and message in stderr
    assert fake.api_requests() == []


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda f: f.fail_next("422"), "failed safety check"),
        (lambda f: f.fail_next("401"), "REMIXBOT_API_KEY"),
        (lambda f: f.fail_next("500"), "HTTP 500"),
        (lambda f: setattr(f, "image_mode", "expired"), "expired or was refused"),
        (lambda f: setattr(f, "unsafe", {0}), "Every image was withheld"),
        (lambda f: setattr(f, "damaged", {0}), "damaged or truncated"),
    ],
)
async def test_backend_failures_exit_1(
    fake: FakeRemix, source: Path, tmp_path: Path, setup, message, monkeypatch, capsys
) -> None:
    setup(fake)
    out = tmp_path / "out"
    argv = [str(source), "--prompt", "x", "--out", str(out)]
    code, _, stderr = await cli_inproc(fake, "ideogram", argv, tmp_path, monkeypatch, capsys)
    assert code == 1
    assert message in stderr
    assert not out.exists() or saved(out) == []


async def test_missing_key_is_a_settings_error(
    fake: FakeRemix, source: Path, tmp_path: Path
) -> None:
    # As a subprocess: the real command's exit 2 (exit 1 is covered by the backend tests above).
    code, _, stderr = await cli(
        fake,
        "ideogram",
        [str(source), "--prompt", "x", "--out", "o"],
        tmp_path,
        REMIXBOT_API_KEY="",
    )
    assert code == 2 and "REMIXBOT_API_KEY is not set" in stderr


async def test_backend_failure_exit_1_as_a_process(
    fake: FakeRemix, source: Path, tmp_path: Path
) -> None:
    fake.fail_next("422")
    args = [str(source), "--prompt", "x", "--out", str(tmp_path / "out")]
    code, stdout, stderr = await cli(fake, "ideogram", args, tmp_path)
    assert code == 1 and stdout == ""
    assert "rejected the request (HTTP 422): Prompt provided failed safety check" in stderr


async def test_fake_as_a_separate_process(source: Path, tmp_path: Path) -> None:
    """`python -m tests.fakeremix` (how later end-to-end tests run it), steered over /_control/."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakeremix",
        "--port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=15)).decode()
        assert line.startswith("READY http://127.0.0.1:")
        base = line.split()[1]
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{base}/_control/configure", json={"unsafe": [1]})
            assert r.status == 200
            remote = FakeRemix()
            remote.base_url = base
            out = tmp_path / "out"
            argv = [str(source), "--prompt", "x", "--out", str(out), "--num-images", "2"]
            code, _, stderr = await cli(remote, "ideogram", argv, tmp_path)
            assert code == 0, stderr
            assert len(saved(out)) == 1 and "1 withheld" in stderr
            async with http.get(f"{base}/_control/requests") as r:
                seen = await r.json()
        (post,) = [q for q in seen["requests"] if q["method"] == "POST"]
        assert (
            post["fields"]["num_images"] == ["2"]
            and post["files"]["image"][0]["format"] == "JPEG"  # intake re-encodes; no alpha
        )
        assert post["headers"]["Api-Key"] == API_KEY
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=10)


def _photo(path: Path, size: tuple[int, int]) -> Path:
    """A real JPEG with EXIF orientation 6 (stored landscape, shown portrait) and a GPS-ish tag."""
    from PIL import Image

    im = Image.new("RGB", size, (180, 90, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "SecretCam"
    im.save(path, format="JPEG", exif=exif.tobytes())
    return path


async def test_dry_run_prepares_and_prints_without_calling_the_backend(
    fake: FakeRemix, tmp_path: Path, monkeypatch, capsys
) -> None:
    photo = _photo(tmp_path / "photo.jpg", (4000, 3000))
    argv = [str(photo), "--prompt", "x", "--dry-run", "--json"]
    code, stdout, _ = await cli_inproc(
        fake, "ideogram", argv, tmp_path, monkeypatch, capsys, REMIXBOT_API_KEY=""
    )
    assert code == 0
    report = json.loads(stdout)
    # Upright portrait (EXIF 6), downscaled to the 2048 long side, nearest ratio 3x4.
    assert report["request"]["body"]["aspect_ratio"] == "3x4"  # shown once, as sent
    assert "aspect_ratio" not in report["image"]
    width, height = report["image"]["width"], report["image"]["height"]
    assert 1900 <= height <= 2048 and width * 4 == height * 3
    assert any("rotated" in c for c in report["image"]["changes"])
    assert fake.api_requests() == []
    assert not (tmp_path / "data" / "remixbot.sqlite3").exists()  # the books were not touched
    code, stdout, _ = await cli_inproc(
        fake, "ideogram", [str(photo), "--prompt", "x", "--dry-run"], tmp_path, monkeypatch, capsys
    )
    assert code == 0 and "3x4" in stdout and str(height) in stdout


async def test_cli_goes_through_the_books_and_exits_3_when_refused(
    fake: FakeRemix, source: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    argv = [str(source), "--prompt", "x", "--out", str(tmp_path / "o"), "--num-images", "2"]
    code, _, _ = await cli_inproc(
        fake, "ideogram", argv, tmp_path, monkeypatch, capsys, REMIXBOT_DEFAULT_LIMIT="3"
    )
    assert code == 0
    code, _, stderr = await cli_inproc(
        fake, "ideogram", argv, tmp_path, monkeypatch, capsys, REMIXBOT_DEFAULT_LIMIT="3"
    )
    assert code == 3
    assert "You have 1 of 3 images left today; this needs 2." in stderr
    assert len(fake.api_requests()) == 1  # the refused run never reached the backend
    code, stdout, _ = await asyncio.to_thread(
        lambda: (main(["quota", "show", "cli", "--json"]), *capsys.readouterr())
    )
    assert code == 0 and json.loads(stdout)["used"] == 2


async def test_a_save_that_fails_part_way_charges_what_was_saved_and_keeps_the_rest(
    fake: FakeRemix, source: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import bot.cli.remix as cli_remix

    real_free_name = cli_remix.free_name
    calls = []

    def disk_full_at_the_second(folder: Path, stem: str, ext: str) -> Path:
        calls.append(stem)
        if len(calls) == 2:  # the disk fills up after the first image (ENOSPC)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_free_name(folder, stem, ext)

    monkeypatch.setattr(cli_remix, "free_name", disk_full_at_the_second)
    out = tmp_path / "o"
    argv = [str(source), "--prompt", "x", "--out", str(out), "--num-images", "3", "--json"]
    code, stdout, stderr = await cli_inproc(fake, "ideogram", argv, tmp_path, monkeypatch, capsys)
    assert code == 1
    assert len(saved(out)) == 1
    summary = json.loads(stdout)
    assert "could not save image 2 of 3" in summary["save_error"]
    assert "No space left on device" in stderr
    # The saved image is charged; the two unsaved ones are kept for the admin, not charged.
    assert len(list((tmp_path / "data" / "undelivered" / "job-1").iterdir())) == 2
    code, stdout, _ = await asyncio.to_thread(
        lambda: (main(["quota", "show", "cli", "--json"]), *capsys.readouterr())
    )
    assert code == 0 and (json.loads(stdout)["used"], json.loads(stdout)["reserved"]) == (1, 0)


async def test_legacy_backend_auto_ratio_is_one_legacy_accepts(
    fake: FakeRemix, tmp_path: Path, monkeypatch, capsys
) -> None:
    from PIL import Image

    tall = tmp_path / "tall.png"
    Image.new("RGB", (400, 500), (9, 9, 9)).save(tall)  # 4x5: not a legacy ratio; 3x4 is nearest
    argv = [str(tall), "--prompt", "x", "--out", str(tmp_path / "o")]
    code, _, _ = await cli_inproc(fake, "ideogram-legacy", argv, tmp_path, monkeypatch, capsys)
    assert code == 0
    assert json.loads(fake.last().field("image_request") or "{}")["aspect_ratio"] == "ASPECT_3_4"


async def test_task_proxy_job_keeps_its_task_id_for_resuming(
    fake: FakeRemix, source: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    argv = [str(source), "--prompt", "x", "--out", str(tmp_path / "o")]
    code, _, _ = await cli_inproc(fake, "task-proxy", argv, tmp_path, monkeypatch, capsys)
    assert code == 0
    code, stdout, _ = await asyncio.to_thread(
        lambda: (main(["jobs", "list", "--json"]), *capsys.readouterr())
    )
    [job] = json.loads(stdout)
    assert job["state"] == "delivered" and job["backend"] == "task-proxy"
    assert job["backend_ref"] in fake.tasks  # the id the proxy handed out, saved on the job


async def test_a_key_refused_while_polling_is_outcome_unknown_and_says_so(
    fake: FakeRemix, source: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    fake.fail_next("401", target="poll")  # the key was revoked while the task ran
    argv = [str(source), "--prompt", "x", "--out", str(tmp_path / "o")]
    code, _, stderr = await cli_inproc(fake, "task-proxy", argv, tmp_path, monkeypatch, capsys)
    [task_id] = fake.tasks
    said = (
        "The task-proxy backend refused the bot's API key (HTTP 401: Injected HTTP 401) while "
        f"task {task_id} was being polled; it may still run and be billed, so it was not "
        "resubmitted; an admin must check REMIXBOT_API_KEY."
    )
    assert code != 0 and said in stderr
    warned = [ln for ln in stderr.splitlines() if "WARNING" in ln and "refused the API key" in ln]
    assert len(warned) == 1 and f"task {task_id}" in warned[0], stderr
    code, stdout, _ = await asyncio.to_thread(
        lambda: (main(["jobs", "list", "--json"]), *capsys.readouterr())
    )
    [job] = json.loads(stdout)
    assert (job["state"], job["backend_ref"], job["error"]) == ("unknown", task_id, said)
    assert len(fake.api_requests()) == 1  # submitted once, never resubmitted

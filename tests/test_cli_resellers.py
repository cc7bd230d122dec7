"""`remixbot remix` against the two reseller shapes: the legacy task proxy and the edit endpoint
with `--mask`, as subprocesses (and in-process for the refusals)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.fakeremix import FakeRemix
from tests.test_cli_remix import cli, cli_inproc, saved


def write_png(path: Path, im: Image.Image) -> Path:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    im = Image.new("RGB", (300, 200), (40, 120, 200))
    im.paste((220, 60, 30), (0, 0, 100, 200))
    return write_png(tmp_path / "photo.png", im)


def mask_file(tmp_path: Path, size: tuple[int, int], shade: int = 0) -> Path:
    """White (keep) with the right third `shade`."""
    im = Image.new("L", size, 255)
    im.paste(shade, (size[0] * 2 // 3, 0, size[0], size[1]))
    return write_png(tmp_path / "mask.png", im)


async def test_task_proxy_on_the_legacy_path_gets_images(fake: FakeRemix, tmp_path: Path) -> None:
    out = tmp_path / "out"
    portrait = write_png(tmp_path / "portrait.png", Image.new("RGB", (240, 300), (9, 99, 199)))
    args = [str(portrait), "--prompt", "a beach", "--out", str(out), "--num-images", "2"]
    code, stdout, stderr = await cli(
        fake,
        "task-proxy",
        args,
        tmp_path,
        REMIXBOT_TASK_SUBMIT_PATH="/ideogram/remix",
        REMIXBOT_AUTH_SCHEME="bearer",
    )
    assert code == 0, stderr
    submit = fake.api_requests()[0]
    assert submit.path == "/ideogram/remix" and set(submit.files) == {"image_file"}
    body = json.loads(submit.fields["image_request"][0])
    # 4x5 is the nearest ratio of all, but the legacy body has none: intake crops to 3x4.
    assert body["aspect_ratio"] == "ASPECT_3_4" and body["model"] == "V_2"
    assert stdout.split() == [str(f) for f in saved(out)] and len(saved(out)) == 2
    assert "task " in stderr and "submitted" in stderr


async def test_edit_with_a_mask_from_the_terminal(
    fake: FakeRemix, photo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    mask = mask_file(tmp_path, (300, 200))
    args = [str(photo), "--prompt", "a red door", "--out", str(out), "--mask", str(mask)]
    args += ["--aspect-ratio", "1x1", "--seed", "12", "--style-type", "design"]
    code, stdout, stderr = await cli(fake, "ideogram-edit", args, tmp_path)
    assert code == 0, stderr
    rec = fake.last()
    assert rec.path == "/ideogram/edit"
    assert rec.fields["seed"] == ["12"] and rec.fields["style_type"] == ["DESIGN"]
    sent = Image.open(io.BytesIO(rec.files["image_file"][0].data))
    got = Image.open(io.BytesIO(rec.files["mask"][0].data))
    assert sent.size == got.size == (200, 200)  # cropped to 1x1 together
    # The right third of 300 px (columns 200-299) is columns 150-199 after the centre crop.
    row = [got.getpixel((x, 100)) for x in range(200)]
    assert set(row[:148]) == {255} and set(row[152:]) == {0}
    files = saved(out)
    assert len(files) == 1 and stdout.split() == [str(files[0])]
    sidecar = json.loads(files[0].with_suffix(".json").read_text())
    assert sidecar["backend"] == "ideogram-edit" and sidecar["request"]["has_mask"] is True


async def test_edit_without_a_mask_uses_transparent_areas(
    fake: FakeRemix, tmp_path: Path, monkeypatch, capsys
) -> None:
    im = Image.new("RGBA", (240, 240), (40, 120, 200, 255))
    im.paste((0, 0, 0, 0), (0, 0, 120, 240))
    source = write_png(tmp_path / "cutout.png", im)
    argv = [str(source), "--prompt", "fill it", "--out", str(tmp_path / "o")]
    code, _, stderr = await cli_inproc(fake, "ideogram-edit", argv, tmp_path, monkeypatch, capsys)
    assert code == 0, stderr
    got = Image.open(io.BytesIO(fake.last().files["mask"][0].data))
    assert got.getpixel((60, 120)) == 0 and got.getpixel((180, 120)) == 255


async def test_edit_without_a_mask_edits_the_whole_image(
    fake: FakeRemix, photo: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    argv = [str(photo), "--prompt", "x", "--out", str(tmp_path / "o")]
    code, _, stderr = await cli_inproc(fake, "ideogram-edit", argv, tmp_path, monkeypatch, capsys)
    assert code == 0, stderr
    assert set(fake.last().files) == {"image_file"}


@pytest.mark.parametrize(
    ("backend", "mask", "message"),
    [
        ("ideogram-edit", (300, 200, 255), "the mask marks nothing to change"),
        ("ideogram-edit", (200, 200, 0), "The mask is 200x200 pixels but the image is 300x200"),
        ("ideogram", (300, 200, 0), "A mask cannot be used on the ideogram backend"),
        ("task-proxy", (300, 200, 0), "A mask cannot be used on the task-proxy backend"),
    ],
)
async def test_mask_refusals_exit_2_and_send_nothing(
    fake: FakeRemix,
    photo: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,
    backend: str,
    mask: tuple[int, int, int],
    message: str,
) -> None:
    path = mask_file(tmp_path, mask[:2], shade=mask[2])
    argv = [str(photo), "--prompt", "x", "--out", str(tmp_path / "o"), "--mask", str(path)]
    code, stdout, stderr = await cli_inproc(fake, backend, argv, tmp_path, monkeypatch, capsys)
    assert code == 2 and message in stderr and stdout == ""
    assert fake.api_requests() == []


async def test_a_missing_mask_file_is_named(
    fake: FakeRemix, photo: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    argv = [str(photo), "--prompt", "x", "--mask", str(tmp_path / "nope.png")]
    code, _, stderr = await cli_inproc(fake, "ideogram-edit", argv, tmp_path, monkeypatch, capsys)
    assert code == 2 and "The mask file" in stderr and "does not exist" in stderr
    assert fake.api_requests() == []

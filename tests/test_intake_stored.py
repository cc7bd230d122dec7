"""load_prepared: a stored input the bot prepared earlier is sent again as it is (issue 10, defect 6)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from bot.errors import InvalidImage
from bot.intake import ImagePool, IntakeLimits, load_prepared, prepare
from bot.store.inputs import InputStore
from tests import imagecorpus as corpus


@pytest.mark.parametrize(
    "make",
    [corpus.jpeg_with_private_metadata, corpus.rgba_hidden_colour_png, corpus.oriented_tiff],
    ids=["jpeg", "png", "tiff"],
)
def test_same_bytes_same_key_no_changes(tmp_path: Path, make) -> None:
    first = prepare(make(), aspect_ratio=None, limits=IntakeLimits())
    store = InputStore(tmp_path)
    key = store.put_sync(first.image.data)
    stored = store.get_sync(key)
    assert stored is not None

    again = load_prepared(stored)
    assert again.image.data is stored  # the very bytes: nothing re-encoded
    assert store.put_sync(again.image.data) == key  # so the content key is unchanged
    assert again.image == first.image  # same format and pixel size as when it was prepared
    assert again.changes == ()
    assert again.aspect_ratio is None  # the stored request carries the ratio it was sent with
    assert (again.source_format, again.source_size) == (
        first.image.format,
        (first.image.width, first.image.height),
    )
    assert again.source_bytes == len(stored)


def test_nothing_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pixels are never loaded: the header gives the size.
    data = prepare(corpus.jpeg(800, 600), aspect_ratio=None, limits=IntakeLimits()).image.data
    loads: list[object] = []
    real_load = Image.Image.load

    def counting_load(self: Image.Image) -> object:
        loads.append(self)
        return real_load(self)

    from PIL import ImageFile

    monkeypatch.setattr(Image.Image, "load", counting_load)
    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    again = load_prepared(data)
    assert (again.image.width, again.image.height) == (800, 600)
    assert loads == []


def test_many_rerolls_keep_the_bytes(tmp_path: Path) -> None:
    data = prepare(corpus.jpeg(1200, 900), aspect_ratio=None, limits=IntakeLimits()).image.data
    digest = hashlib.sha256(data).hexdigest()
    for _ in range(5):
        data = load_prepared(data).image.data
    assert hashlib.sha256(data).hexdigest() == digest


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The stored input image is not one the bot prepared; start a new remix."),
        (corpus.tiff(), "The stored input image is not one the bot prepared; start a new remix."),
        (
            b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
            "The stored input image is damaged; start a new remix.",
        ),
    ],
    ids=["empty", "tiff", "broken header"],
)
def test_not_a_prepared_image_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImage) as info:
        load_prepared(data)
    assert str(info.value) == message


async def test_through_the_pool() -> None:
    data = prepare(corpus.png(300, 200), aspect_ratio=None, limits=IntakeLimits()).image.data
    async with ImagePool() as pool:
        again = await pool.load_prepared(data)
    assert again.image.data is data

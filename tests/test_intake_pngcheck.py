"""PngStream proves a PNG result whole while it downloads, and only ever vouches: whatever it
does not vouch for is decoded as before, so the verdict on every file is the decoder's."""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from bot.errors import InvalidImage
from bot.intake import ImagePool
from bot.intake.pngcheck import PngStream, watch_result
from bot.intake.verify import RESULT_MAX_PIXELS, check_result
from bot.remix.backends import ResultImage
from bot.remix.backends.base import RemixResult
from bot.remix.download import DownloadedImage, DownloadPolicy, download_all, make_download_session
from bot.remix.pipeline import collect
from tests import imagecorpus as corpus
from tests.fakeremix import FakeRemix
from tests.fakeremix.images import photo_like

POLICY = DownloadPolicy(
    max_bytes=20 * 1024 * 1024, total_timeout=10.0, trusted_hosts=frozenset({"127.0.0.1"})
)


def streamed(data: bytes, piece: int = 4096, max_pixels: int = RESULT_MAX_PIXELS) -> PngStream:
    stream = PngStream(max_pixels)
    for i in range(0, len(data), piece):
        stream.feed(data[i : i + piece])
    return stream


def saved(im: Image.Image, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **params)
    return buf.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, i = [], 8
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        out.append((data[i + 4 : i + 8], data[i + 8 : i + 8 + length]))
        i += 12 + length
    return out


def rebuilt(data: bytes, pixels: bytes | None = None, extra_after: bytes = b"") -> bytes:
    """The PNG with its rows (filter bytes included) replaced, every CRC right."""
    out = corpus_signature = b"\x89PNG\r\n\x1a\n"
    assert data.startswith(corpus_signature)
    for kind, body in chunks(data):
        if kind == b"IDAT":
            if pixels is not None:
                out += chunk(b"IDAT", zlib.compress(pixels))
                pixels = None
            continue
        if kind == b"IEND":
            out += extra_after
        out += chunk(kind, body)
    return out


def rows(data: bytes) -> bytes:
    return zlib.decompress(b"".join(body for kind, body in chunks(data) if kind == b"IDAT"))


MODES = {
    "1": Image.new("1", (61, 17), 1),
    "L": Image.linear_gradient("L").resize((70, 40)),
    "LA": Image.new("LA", (33, 20), (90, 128)),
    "P": Image.linear_gradient("L").resize((50, 30)).convert("P"),
    "RGB": Image.merge("RGB", [Image.linear_gradient("L").resize((64, 48))] * 3),
    "RGBA": Image.new("RGBA", (40, 41), (1, 2, 3, 4)),
    "I;16": Image.new("I;16", (20, 10), 40000),
}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("piece", [1, 7, 4096, 10**7])
def test_whole_pngs_are_vouched_for_however_they_arrive(mode: str, piece: int) -> None:
    data = saved(MODES[mode])
    stream = streamed(data, piece)
    assert stream.whole
    assert stream.size == MODES[mode].size


def test_a_photo_sized_result_is_vouched_for() -> None:
    stream = streamed(photo_like("PNG", (1152, 864), 0), 256 * 1024)
    assert stream.whole and stream.size == (1152, 864)


def test_a_cut_png_is_never_vouched_for() -> None:
    data = saved(MODES["RGB"])
    for end in range(len(data)):
        assert not streamed(data[:end], 64).whole, end


@pytest.mark.parametrize("name", ["damaged_png", "png_cut_zlib_stream", "truncated_png"])
def test_damaged_corpus_files_are_not_vouched_for(name: str) -> None:
    assert not streamed(getattr(corpus, name)(), 65536).whole


CORPUS_PNGS = [
    "damaged_png",
    "png_cut_zlib_stream",
    "truncated_png",
    "png_bomb",
    "png_huge_text",
    "png_ztxt_bomb",
    "gray16_png",
    "palette_transparent_png",
    "la_png",
    "rgba_hidden_colour_png",
    "apng",
    "png_with_private_metadata",
]


@pytest.mark.parametrize("name", CORPUS_PNGS)
def test_the_corpus_gets_the_decoders_verdict(name: str, tmp_path: Path) -> None:
    """With or without the stream's answer, check_result accepts and refuses the same files
    (the text bombs have sound pixels; Pillow's header read judges their text as before)."""
    data = getattr(corpus, name)()
    path = tmp_path / "result.png"
    path.write_bytes(data)
    verdicts = []
    for whole in (False, streamed(data, 65536).whole):
        try:
            verdicts.append(check_result(path, whole=whole))
        except InvalidImage as exc:
            verdicts.append(str(exc))
    assert verdicts[0] == verdicts[1]


def test_wrong_rows_are_not_vouched_for() -> None:
    data = saved(MODES["RGB"])
    good = rows(data)
    stride = len(good) // 48
    bad_filter = bytes([5]) + good[1:]
    assert not streamed(rebuilt(data, bad_filter)).whole
    assert not streamed(rebuilt(data, good[:-stride])).whole  # a row missing
    assert not streamed(rebuilt(data, good + good[:stride])).whole  # a row too many
    assert streamed(rebuilt(data, good)).whole  # the rebuild itself is sound


def test_a_bad_crc_is_not_vouched_for() -> None:
    data = bytearray(saved(MODES["L"]))
    for kind in (b"IHDR", b"IDAT", b"IEND"):
        at = data.index(kind)
        (length,) = struct.unpack(">I", data[at - 4 : at])
        broken = bytearray(data)
        broken[at + 4 + length] ^= 0xFF  # first byte of the chunk's CRC
        assert not streamed(bytes(broken)).whole, kind


def test_what_it_leaves_to_the_decoder() -> None:
    data = saved(MODES["RGB"])
    # Interlaced (seven passes): set the IHDR flag, CRC fixed.
    ihdr = dict(chunks(data))[b"IHDR"]
    interlaced = data.replace(chunk(b"IHDR", ihdr), chunk(b"IHDR", ihdr[:12] + b"\x01"))
    assert not streamed(interlaced).whole
    # Chunks after the pixels (text, animation frames) are the decoder's to read.
    assert not streamed(rebuilt(data, rows(data), chunk(b"tEXt", b"k\x00v"))).whole
    # Over the pixel cap, and a 400 MP bomb, from the header.
    assert not streamed(data, max_pixels=64 * 48 - 1).whole
    assert not streamed(corpus.png_bomb(), 65536).whole
    # A palette image without its palette.
    palette = saved(MODES["P"])
    without = b"\x89PNG\r\n\x1a\n" + b"".join(
        chunk(k, b) for k, b in chunks(palette) if k != b"PLTE"
    )
    assert not streamed(without).whole
    assert streamed(palette).whole


def _mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Cut, flipped, scrambled and spliced variants, CRCs fixed up for half of them."""
    out = []
    for _ in range(count):
        kind = rng.choice(("cut", "flip", "scramble", "splice"))
        b = bytearray(data)
        if kind == "cut":
            b = b[: rng.randrange(len(b))]
        elif kind == "flip":
            b[rng.randrange(8, len(b))] ^= 1 << rng.randrange(8)
        elif kind == "scramble":
            start = rng.randrange(8, len(b) - 16)
            for i in range(start, start + 16):
                b[i] = rng.randrange(256)
        else:
            i, j = sorted(rng.randrange(8, len(b)) for _ in range(2))
            b = b[:i] + b[j:]
        mutated = bytes(b)
        if rng.random() < 0.5:  # the damage hidden under right CRCs, as a bad encoder would
            try:
                pixels = zlib.decompressobj().decompress(
                    b"".join(body for k, body in chunks(mutated) if k == b"IDAT")
                )
                mutated = rebuilt(mutated, pixels) if pixels else mutated
            except (zlib.error, struct.error):
                pass
        out.append(mutated)
    return out


def test_the_verdict_is_the_decoders_on_random_damage(tmp_path: Path) -> None:
    """Vouching only skips the decode: check_result with the stream's answer refuses exactly
    what the full decode refuses, and whatever the stream vouches for decodes."""
    rng = random.Random(20261206)
    sources = [saved(MODES[m]) for m in ("RGB", "P", "LA", "1")] + [corpus.png(160, 120)]
    vouched = 0
    for n, data in enumerate(m for s in sources for m in _mutations(s, rng, 150)):
        stream = streamed(data, rng.choice((1, 13, 512, 65536)))
        path = tmp_path / f"m{n}.png"
        path.write_bytes(data)
        verdicts = []
        for whole in (False, stream.whole):
            try:
                verdicts.append(check_result(path, whole=whole))
            except InvalidImage:
                verdicts.append(None)
        assert verdicts[0] == verdicts[1], n
        if stream.whole:
            vouched += 1
            with Image.open(io.BytesIO(data)) as im:
                im.load()
    assert vouched > 20  # the damage left some files whole (a flip in a CRC-free spot)


def test_with_whole_only_the_header_is_read(tmp_path: Path) -> None:
    path = tmp_path / "scrambled.png"
    path.write_bytes(corpus.damaged_png())
    with pytest.raises(InvalidImage, match="damaged or truncated"):
        check_result(path)
    # What `whole` means: the pixels were proved already. Only a PngStream may say so.
    assert check_result(path, whole=True) == (400, 300)
    assert not streamed(path.read_bytes()).whole


async def test_downloads_are_watched_as_they_arrive(fake: FakeRemix, tmp_path: Path) -> None:
    images = [
        ResultImage(url=fake.result_url(1, 0)),  # PNG
        ResultImage(url=fake.result_url(2, 1)),  # JPEG: decoded after the download
        ResultImage(url=None, data=corpus.damaged_png()),
    ]
    async with make_download_session(POLICY) as session:
        got = await download_all(session, images, tmp_path, POLICY, watch=watch_result)
    assert all(isinstance(g, DownloadedImage) for g in got)
    assert [g.whole for g in got if isinstance(g, DownloadedImage)] == [True, False, False]


async def test_collect_skips_the_decode_only_for_vouched_pngs(tmp_path: Path) -> None:
    whole_png = photo_like("PNG", (320, 240), 1)
    result = RemixResult(
        images=[
            ResultImage(url=None, data=whole_png),
            ResultImage(url=None, data=corpus.damaged_png()),  # every CRC right, rows scrambled
            ResultImage(url=None, data=photo_like("JPEG", (320, 240), 2)),
        ],
        backend_ref=None,
        backend="test",
    )
    asked: list[tuple[str, bool]] = []
    async with ImagePool() as pool, make_download_session(POLICY) as session:

        async def verify(path: Path, *, whole: bool = False) -> None:
            asked.append((path.suffix, whole))
            await pool.check_result(path, whole=whole)

        delivery = await collect(result, session, POLICY, tmp_path, verify=verify)
    assert sorted(asked) == [(".jpg", False), (".png", False), (".png", True)]
    assert [i.format for i in delivery.images] == ["PNG", "JPEG"]
    assert len(delivery.damaged) == 1 and delivery.failed_downloads == 1
    assert "damaged or truncated" in delivery.errors[0]


async def test_a_large_result_is_saved_byte_for_byte_while_watched(
    fake: FakeRemix, tmp_path: Path
) -> None:
    # 1.4 MB: several batches, each written and watched while the next one arrives.
    fake.result_size, fake.result_format = [1152, 864], "PNG"
    url = fake.result_url(3, 0)
    async with make_download_session(POLICY) as session:
        (got,) = await download_all(
            session, [ResultImage(url=url)], tmp_path, POLICY, watch=watch_result
        )
    assert isinstance(got, DownloadedImage) and got.whole
    assert got.path.read_bytes() == photo_like("PNG", (1152, 864), 3)


class _FailingWatcher:
    """A watcher with a bug in it."""

    whole = True

    def feed(self, data: bytes) -> None:
        raise RuntimeError("a bug in a watcher")


async def test_a_failing_watcher_costs_only_the_shortcut(tmp_path: Path) -> None:
    data = photo_like("PNG", (320, 240), 4)
    async with make_download_session(POLICY) as session:
        (got,) = await download_all(
            session,
            [ResultImage(url=None, data=data)],
            tmp_path,
            POLICY,
            watch=lambda fmt: _FailingWatcher(),
        )
    assert isinstance(got, DownloadedImage) and not got.whole  # so it is decoded as before
    assert got.path.read_bytes() == data

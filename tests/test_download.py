"""Result download: every guard (scheme, private addresses, redirects, size, time, format, key)."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from bot.errors import DownloadError
from bot.remix.backends import ResultImage
from bot.remix.download import (
    DownloadedImage,
    DownloadPolicy,
    address_allowed,
    download_all,
    make_download_session,
)
from bot.settings import Settings
from tests.fakeremix import FakeRemix
from tests.fakeremix.images import make_image

TRUSTED = DownloadPolicy(
    max_bytes=1024 * 1024,
    total_timeout=1.0,
    connect_timeout=0.5,
    read_timeout=0.5,
    trusted_hosts=frozenset({"127.0.0.1"}),
)
UNTRUSTED = DownloadPolicy(max_bytes=1024 * 1024, total_timeout=1.0)


async def fetch(
    urls_or_images: list, dest: Path, policy: DownloadPolicy = TRUSTED
) -> list[DownloadedImage | DownloadError | None]:
    images = [u if isinstance(u, ResultImage) else ResultImage(url=u) for u in urls_or_images]
    async with make_download_session(policy) as session:
        return await download_all(session, images, dest, policy, stem="r")


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


def image_hits(fake: FakeRemix) -> list[str]:
    return [h for h in fake.hits if h.startswith(("/images/", "/dl/"))]


async def test_saves_verified_images_without_the_key(fake: FakeRemix, tmp_path: Path) -> None:
    outcomes = await fetch([fake.result_url(1, 0), fake.result_url(2, 1)], tmp_path)
    assert [type(o) for o in outcomes] == [DownloadedImage, DownloadedImage]
    first, second = outcomes
    assert (first.path.name, first.format) == ("r-1.png", "PNG")
    assert (second.path.name, second.format) == ("r-2.jpg", "JPEG")
    assert (
        first.path.read_bytes().startswith(b"\x89PNG") and first.size == first.path.stat().st_size
    )
    assert leftovers(tmp_path) == ["r-1.png", "r-2.jpg"]
    gets = [r for r in fake.requests if r.path.startswith("/images/")]
    assert len(gets) == 2
    for r in gets:
        assert not {"Api-Key", "Authorization", "Cookie"} & set(r.headers)


async def test_inline_data_written_without_fetch(fake: FakeRemix, tmp_path: Path) -> None:
    data = make_image("PNG", seed=9)
    (out,) = await fetch([ResultImage(url=None, data=data)], tmp_path)
    assert isinstance(out, DownloadedImage) and out.path.read_bytes() == data
    assert image_hits(fake) == []


async def test_unsafe_images_are_withheld_not_errors(fake: FakeRemix, tmp_path: Path) -> None:
    images = [
        ResultImage(url=None, is_safe=False),
        ResultImage(url=fake.result_url(), is_safe=True),
        ResultImage(url=fake.result_url(), is_safe=False),  # flagged: not fetched even with a URL
    ]
    outcomes = await fetch(images, tmp_path)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], DownloadedImage)
    assert len(image_hits(fake)) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/images/a.png",
        "http://[::ffff:127.0.0.1]:{port}/images/a.png",
        "http://[::1]:{port}/images/a.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/x.png",
        "file:///etc/passwd",
        "ftp://127.0.0.1/x.png",
        "http://localhost:{port}/images/a.png",  # a name: refused by the connect-time resolver
    ],
)
async def test_refused_without_a_connection(fake: FakeRemix, tmp_path: Path, url: str) -> None:
    port = fake.base_url.rsplit(":", 1)[1]
    start = time.monotonic()
    (out,) = await fetch([url.format(port=port)], tmp_path, UNTRUSTED)
    assert isinstance(out, DownloadError)
    assert "not fetched" in str(out) or "non-public" in str(out)
    assert time.monotonic() - start < 0.9  # refused up front, not timed out
    assert fake.hits == []
    assert leftovers(tmp_path) == []


async def test_trusted_name_is_allowed(fake: FakeRemix, tmp_path: Path) -> None:
    fake.image_base = fake.base_url.replace("127.0.0.1", "localhost")
    policy = DownloadPolicy(
        max_bytes=1 << 20, total_timeout=2, trusted_hosts=frozenset({"localhost"})
    )
    (out,) = await fetch([fake.result_url()], tmp_path, policy)
    assert isinstance(out, DownloadedImage)


async def test_redirect_to_internal_address_refused(fake: FakeRemix, tmp_path: Path) -> None:
    fake.image_mode = "redirect_internal"
    (out,) = await fetch([fake.result_url()], tmp_path)
    assert isinstance(out, DownloadError) and "169.254.169.254" in str(out)
    assert image_hits(fake) == ["/dl/redirect"]
    assert leftovers(tmp_path) == []


async def test_redirect_checked_each_hop_and_followed(fake: FakeRemix, tmp_path: Path) -> None:
    fake.image_mode = "redirect_ok"
    (out,) = await fetch([fake.result_url()], tmp_path)
    assert isinstance(out, DownloadedImage)
    assert image_hits(fake)[0] == "/dl/redirect" and image_hits(fake)[1].startswith("/images/")


async def test_redirect_chain_too_long(fake: FakeRemix, tmp_path: Path) -> None:
    url = fake.result_url()
    for _ in range(6):
        url = f"{fake.base_url}/dl/redirect?to={quote(url, safe='')}"
    (out,) = await fetch([url], tmp_path)
    assert isinstance(out, DownloadError) and "more than 5 times" in str(out)
    assert image_hits(fake) == ["/dl/redirect"] * 6


async def test_expired_link(fake: FakeRemix, tmp_path: Path) -> None:
    fake.image_mode = "expired"
    (out,) = await fetch([fake.result_url()], tmp_path)
    assert isinstance(out, DownloadError)
    assert "expired or was refused by 127.0.0.1 (HTTP 403)" in str(out)
    assert "sig=" not in str(out)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("huge", "over the 1 MiB cap"),  # Content-Length says so: refused before reading
        ("huge_nolen", "larger than the 1 MiB cap"),
        ("gzip_bomb", "larger than the 1 MiB cap"),  # counted after decoding
        ("notimage", "not a JPEG, PNG or WebP"),
    ],
)
async def test_size_and_format_limits(
    fake: FakeRemix, tmp_path: Path, mode: str, message: str
) -> None:
    fake.image_mode = mode
    (out,) = await fetch([fake.result_url()], tmp_path)
    assert isinstance(out, DownloadError) and message in str(out)
    assert leftovers(tmp_path) == []  # partial file deleted


async def test_slow_loris_times_out(fake: FakeRemix, tmp_path: Path) -> None:
    fake.image_mode = "slow"
    fake.slow_delay = 0.1  # a byte every 0.1 s never trips the read timeout; the total does
    start = time.monotonic()
    good = fake.result_url()  # is "slow" too: both run at once
    outcomes = await fetch([fake.result_url(), good], tmp_path)
    assert all(
        isinstance(o, DownloadError) and "took longer than 1 seconds" in str(o) for o in outcomes
    )
    assert time.monotonic() - start < 1.8
    assert leftovers(tmp_path) == []


async def test_one_failure_does_not_stop_the_others(fake: FakeRemix, tmp_path: Path) -> None:
    good = fake.result_url()
    fake.image_mode = "expired"
    outcomes = await fetch([good, fake.result_url()], tmp_path)
    assert isinstance(outcomes[0], DownloadedImage) and isinstance(outcomes[1], DownloadError)


async def test_needs_the_guarded_session(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(TypeError, match="make_download_session"):
            await download_all(plain, [], tmp_path, TRUSTED)


def test_policy_from_settings() -> None:
    s = Settings(trusted_hosts=("127.0.0.1", "[::1]"), max_download_bytes=5000, download_timeout=3)
    p = DownloadPolicy.from_settings(s)
    assert p.trusted_hosts == {"127.0.0.1", "::1"}
    assert (p.max_bytes, p.total_timeout, p.connect_timeout, p.read_timeout) == (5000, 3, 3, 3)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("224.0.0.1", False),
        ("not-an-ip", False),
    ],
)
def test_address_policy(address: str, allowed: bool) -> None:
    assert address_allowed(address) is allowed

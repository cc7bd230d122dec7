"""Fetch result images safely: http(s) only, no private addresses, size cap, no API key, to disk."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.errors import DownloadError
from bot.media import FORMAT_EXT, sniff_format
from bot.remix.backends.base import ResultImage
from bot.settings import Settings

log = logging.getLogger(__name__)

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
EXPIRED = frozenset({401, 403, 404, 410})
CHUNK = 64 * 1024
# Disk writes are batched so the loop hands the thread pool few large writes, and small enough
# that a watcher (the PNG check) works on an image's first bytes while the rest still arrive.
FLUSH_BYTES = 256 * 1024


@dataclass(frozen=True)
class DownloadPolicy:
    """Limits for fetching result images; build it with :meth:`from_settings`."""

    max_bytes: int
    total_timeout: float
    connect_timeout: float = 10.0
    read_timeout: float = 10.0
    trusted_hosts: frozenset[str] = frozenset()
    max_redirects: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> DownloadPolicy:
        """Size cap, timeouts and trusted hosts from the settings."""
        total = settings.download_timeout
        return cls(
            max_bytes=settings.max_download_bytes,
            total_timeout=total,
            connect_timeout=min(10.0, total),
            read_timeout=min(10.0, total),
            trusted_hosts=frozenset(h.lower().strip("[]") for h in settings.trusted_hosts),
        )

    def trusts(self, host: str) -> bool:
        """Whether `host` is exempt from the private-address check."""
        return host.lower().strip("[]").rstrip(".") in self.trusted_hosts


class Watcher(Protocol):
    """Looks at an image's bytes as they are saved (in the writer thread, off the loop)."""

    @property
    def whole(self) -> bool:
        """Whether the bytes seen so far make a whole, sound image."""

    def feed(self, data: bytes) -> None:
        """Take the next bytes; never raises."""


# A watcher for an image of the given format (sniffed from its first bytes), or None.
Watch = Callable[[str], Watcher | None]


@dataclass(frozen=True)
class DownloadedImage:
    """A result image saved to disk, its bytes verified as JPEG, PNG or WebP; `whole` when a
    watcher saw every byte of it and vouched for it."""

    index: int
    path: Path
    format: str
    size: int
    whole: bool = False


class BlockedAddress(OSError):
    """A host resolved to an address the bot must not connect to."""


def address_allowed(address: str) -> bool:
    """True only for globally routable unicast addresses (IPv4-mapped IPv6 unwrapped first)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:  # fec0::/10, deprecated but still routed on some networks
            return False
        # Tunnels that carry an IPv4 address: judge the address inside (6to4 2002::/16 was not
        # treated as non-global before CPython 3.11.10).
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            ip = inner
    # is_global had gaps before CPython 3.11.10 (CVE-2024-4032): check the named ranges as well.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses non-global addresses.

    Checking here, at connect time, means a DNS answer that changes between a check and the
    connection (rebinding) cannot slip through: the addresses checked are the ones dialled.
    """

    def __init__(self, trusted_hosts: frozenset[str]) -> None:
        self._inner = aiohttp.DefaultResolver()
        self._trusted = trusted_hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host`; raise BlockedAddress if any answer is private, loopback, link-local…"""
        results = await self._inner.resolve(host, port, family)
        if host.lower().rstrip(".") in self._trusted:
            return results
        for result in results:
            if not address_allowed(result["host"]):
                raise BlockedAddress(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


_guarded_sessions: weakref.WeakSet[aiohttp.ClientSession] = weakref.WeakSet()


def make_download_session(policy: DownloadPolicy) -> aiohttp.ClientSession:
    """A session for image hosts: guarded resolver, no default headers (never the API key)."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy.trusted_hosts),
        use_dns_cache=False,  # every connection re-resolves through the guard
        limit_per_host=8,
    )
    session = aiohttp.ClientSession(
        connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    )
    _guarded_sessions.add(session)
    return session


def check_url(url: str, policy: DownloadPolicy) -> URL:
    """Refuse non-http(s) URLs and IP-literal hosts that are not public (unless trusted)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise DownloadError("A result image link is not a valid URL; it was not fetched.") from None
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(
            f"A result image link uses {parsed.scheme or 'no'} scheme, not http(s); "
            "it was not fetched."
        )
    host = (parsed.raw_host or "").strip("[]")
    if not host:
        raise DownloadError("A result image link has no host; it was not fetched.")
    if policy.trusts(host):
        return parsed
    # aiohttp does not consult the resolver for IP literals, so they are checked here.
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return parsed
    if not address_allowed(host):
        raise DownloadError(
            f"A result image link points at the non-public address {host}; it was not fetched "
            "(list the host in REMIXBOT_TRUSTED_HOSTS if it is yours)."
        )
    return parsed


class _Sink:
    """Streams bytes to a part file off the event loop, counting and sniffing them, and shows
    them to the image's watcher in the same writer thread.

    One batch is written (and watched) while the next one arrives: the loop waits for a write
    only when the following batch is ready, so a watcher's work (inflating a PNG) overlaps the
    download instead of following it.
    """

    def __init__(self, path: Path, max_bytes: int, host: str, watch: Watch | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.host = host
        self.size = 0
        self.head = b""
        self.format: str | None = None
        self.watcher: Watcher | None = None
        self._watch = watch
        self._writing: asyncio.Future[None] | None = None  # the batch in the writer thread
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._file: Any = None

    async def open(self) -> None:
        self._file = await asyncio.to_thread(open, self.path, "wb")

    async def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise DownloadError(
                f"A result image from {self.host} is larger than the {_mb(self.max_bytes)} cap; "
                "it was not kept."
            )
        if self.format is None:
            self.head = (self.head + chunk)[:16]
            if len(self.head) >= 12:
                self._sniff()
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= FLUSH_BYTES:
            await self._flush()

    def _sniff(self) -> None:
        found = sniff_format(self.head)
        if found not in ALLOWED_FORMATS:
            raise DownloadError(
                f"A result image from {self.host} is not a JPEG, PNG or WebP file; it was not kept."
            )
        self.format = found
        if self._watch is not None:
            self.watcher = self._watch(found)

    def _write(self, data: bytes) -> None:
        """Blocking: save the bytes, and show them to the watcher in the same thread."""
        self._file.write(data)
        if self.watcher is not None:
            try:
                self.watcher.feed(data)
            except Exception:  # a watcher only ever helps: without it the decode decides
                log.warning("result image watcher failed; decoding it instead", exc_info=True)
                self.watcher = None

    @property
    def whole(self) -> bool:
        """The watcher saw every byte and vouched for the image."""
        return self.watcher is not None and self.watcher.whole

    async def _flush(self, last: bool = False) -> None:
        """Hand the buffered batch to the writer thread once the previous one is written; with
        `last`, return only when everything is on disk (and watched)."""
        data = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        await self._written()
        if data:
            self._writing = asyncio.ensure_future(asyncio.to_thread(self._write, data))
        if last:
            await self._written()

    async def _written(self) -> None:
        """Wait for the batch in the writer thread (its error, such as a full disk, is raised)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def finish(self) -> str:
        if self.format is None:
            self._sniff()
        await self._flush(last=True)
        await asyncio.to_thread(self._file.close)
        self._file = None
        assert self.format is not None
        return self.format

    async def discard(self) -> None:
        with contextlib.suppress(Exception):  # the file goes anyway; not while it is written
            await self._written()
        if self._file is not None:
            await asyncio.to_thread(self._file.close)
            self._file = None
        await asyncio.to_thread(_unlink, self.path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _mb(n: int) -> str:
    return f"{n / 1048576:.0f} MiB" if n >= 1048576 else f"{n} bytes"


async def _fetch(
    session: aiohttp.ClientSession, url: str, sink: _Sink, policy: DownloadPolicy
) -> None:
    """GET with manual redirects (every hop checked), streaming into the sink."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=policy.connect_timeout, sock_read=policy.read_timeout
    )
    current = url
    for _hop in range(policy.max_redirects + 1):
        target = check_url(current, policy)
        host = target.host or "?"
        sink.host = host
        async with session.get(
            target,
            allow_redirects=False,
            timeout=timeout,
            headers={"Accept": "image/png, image/jpeg, image/webp"},
        ) as resp:
            if resp.status in REDIRECTS:
                location = resp.headers.get("Location")
                if not location:
                    raise DownloadError(f"{host} redirected a result image link nowhere.")
                try:
                    current = str(target.join(URL(location)))
                except ValueError:
                    raise DownloadError(
                        f"{host} redirected a result image link to an invalid address."
                    ) from None
                continue
            if resp.status in EXPIRED:
                raise DownloadError(
                    f"The result image link has expired or was refused by {host} "
                    f"(HTTP {resp.status}); the image was generated but can no longer be fetched."
                )
            if resp.status != 200:
                raise DownloadError(
                    f"{host} answered HTTP {resp.status} for a result image; it was not fetched."
                )
            length = resp.content_length
            if length is not None and length > policy.max_bytes:
                raise DownloadError(
                    f"A result image from {host} is {_mb(length)}, over the "
                    f"{_mb(policy.max_bytes)} cap; it was not fetched."
                )
            await sink.open()
            # Decoded bytes are counted: Content-Length bounds only the compressed size.
            async for chunk in resp.content.iter_chunked(CHUNK):
                await sink.feed(chunk)
            return
    raise DownloadError(
        f"A result image link redirected more than {policy.max_redirects} times; it was not fetched."
    )


def _blocked(exc: BaseException) -> bool:
    """Whether a connection error came from the guarded resolver."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, BlockedAddress):
            return True
        if isinstance(cur, aiohttp.ClientConnectorError) and isinstance(
            cur.os_error, BlockedAddress
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


async def download_one(
    session: aiohttp.ClientSession,
    image: ResultImage,
    index: int,
    dest_dir: Path,
    policy: DownloadPolicy,
    stem: str = "result",
    watch: Watch | None = None,
) -> DownloadedImage:
    """Save one deliverable result image under dest_dir, or raise DownloadError (no partial file);
    `watch` gives the image a watcher that sees its bytes as they are saved."""
    part = dest_dir / f".{stem}-{index + 1}-{uuid.uuid4().hex[:8]}.part"
    sink = _Sink(part, policy.max_bytes, "the backend", watch)
    try:
        if image.data is not None:
            await sink.open()
            await sink.feed(image.data)
        elif image.url:
            try:
                async with asyncio.timeout(policy.total_timeout):
                    await _fetch(session, image.url, sink, policy)
            except TimeoutError:
                raise DownloadError(
                    f"Fetching a result image from {sink.host} took longer than "
                    f"{policy.total_timeout:g} seconds; it was abandoned."
                ) from None
            except aiohttp.ClientError as exc:
                if _blocked(exc):
                    raise DownloadError(
                        f"A result image host ({sink.host}) resolves to a non-public address; "
                        "it was not fetched (list it in REMIXBOT_TRUSTED_HOSTS if it is yours)."
                    ) from None
                raise DownloadError(
                    f"Fetching a result image from {sink.host} failed ({type(exc).__name__})."
                ) from None
        else:
            raise DownloadError("A result image has neither a link nor data.")
        fmt = await sink.finish()
        final = free_name(dest_dir, f"{stem}-{index + 1}", FORMAT_EXT[fmt])
        await asyncio.to_thread(os.replace, part, final)
        return DownloadedImage(
            index=index, path=final, format=fmt, size=sink.size, whole=sink.whole
        )
    except DownloadError:
        await sink.discard()
        raise
    except OSError as exc:
        await sink.discard()
        raise DownloadError(
            f"A result image could not be saved to {dest_dir} ({exc.strerror or exc})."
        ) from None
    except BaseException:
        await asyncio.shield(sink.discard())
        raise


def free_name(dest_dir: Path, stem: str, ext: str) -> Path:
    """`stem.ext`, or `stem-2.ext`, … when a file of that name already exists."""
    candidate = dest_dir / f"{stem}.{ext}"
    n = 2
    while candidate.exists():
        candidate = dest_dir / f"{stem}-{n}.{ext}"
        n += 1
    return candidate


async def download_all(
    session: aiohttp.ClientSession,
    images: Sequence[ResultImage],
    dest_dir: Path,
    policy: DownloadPolicy,
    *,
    stem: str = "result",
    then: Callable[[DownloadedImage], Awaitable[DownloadedImage | DownloadError]] | None = None,
    watch: Watch | None = None,
) -> list[DownloadedImage | DownloadError | None]:
    """Fetch every deliverable image at once; per image: saved, DownloadError, or None (withheld).

    `watch` gives each image a watcher fed its bytes while they are saved (a check during the
    download); `then` runs on each saved image as soon as it is saved (while the others download).
    """
    if session not in _guarded_sessions:
        raise TypeError("download_all needs a session made by make_download_session().")
    await asyncio.to_thread(dest_dir.mkdir, parents=True, exist_ok=True)

    async def one(i: int, image: ResultImage) -> DownloadedImage | DownloadError | None:
        if not image.deliverable:
            return None
        try:
            saved = await download_one(session, image, i, dest_dir, policy, stem, watch)
        except DownloadError as exc:
            log.warning("result image %d not delivered: %s", i + 1, exc)
            return exc
        except Exception as exc:  # one bad image must not sink the others (or leave them running)
            log.warning("result image %d not delivered", i + 1, exc_info=True)
            return DownloadError(
                f"A result image could not be fetched ({type(exc).__name__}); it was not posted."
            )
        return saved if then is None else await then(saved)

    return list(await asyncio.gather(*(one(i, im) for i, im in enumerate(images))))

"""One remix end to end: check -> backend call -> download every safe image at once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiohttp

from bot.errors import DownloadError, InvalidImage, RemixOutcomeUnknown
from bot.intake.pngcheck import watch_result
from bot.media import EncodedImage
from bot.remix.backends.base import Backend, OnSubmitted, RemixResult
from bot.remix.download import DownloadedImage, DownloadPolicy, download_all
from bot.remix.request import RemixRequest

log = logging.getLogger(__name__)


class Verify(Protocol):
    """Decodes a saved result image off the event loop; raises InvalidImage when it is damaged.
    `whole`: its bytes were proved sound while they downloaded (only the header is left to read).
    """

    def __call__(self, path: Path, *, whole: bool = False) -> Awaitable[None]: ...


@dataclass(frozen=True)
class DeliveredImage:
    """A result image on disk with what the backend said about it."""

    path: Path
    seed: int | None
    resolution: str | None
    prompt: str | None
    format: str


@dataclass(frozen=True)
class Delivery:
    """The outcome of one remix: files delivered, images withheld or lost, images billed."""

    images: list[DeliveredImage]
    withheld: int
    failed_downloads: int
    backend_ref: str | None
    billed: int
    backend: str = ""
    errors: list[str] = field(default_factory=list)
    # Saved results that failed their decode check: paid for, not posted, kept for the admin.
    damaged: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every safe image was delivered."""
        return self.failed_downloads == 0


async def run_remix(
    backend: Backend,
    session: aiohttp.ClientSession,
    policy: DownloadPolicy,
    request: RemixRequest,
    image: EncodedImage,
    refs: Sequence[EncodedImage],
    dest_dir: Path,
    *,
    mask: EncodedImage | None = None,
    on_submitted: OnSubmitted | None = None,
    stem: str = "result",
    verify: Verify | None = None,
) -> Delivery:
    """Run one remix (under `mask` if given) and save its images; `session` is the download
    session (no API key). The request was checked against the backend once, when the job was
    accepted."""
    result = await backend.remix(request, image, refs, mask=mask, on_submitted=on_submitted)
    return await collect(result, session, policy, dest_dir, stem=stem, verify=verify)


async def resume_remix(
    backend: Backend,
    session: aiohttp.ClientSession,
    policy: DownloadPolicy,
    task_id: str,
    dest_dir: Path,
    *,
    stem: str = "result",
    verify: Verify | None = None,
) -> Delivery:
    """Finish a job submitted before a restart: poll its task, then download like run_remix."""
    resume = getattr(backend, "resume", None)
    if resume is None:
        raise RemixOutcomeUnknown(
            f"The {backend.name} backend cannot resume a request after a restart."
        )
    result = await resume(task_id)
    return await collect(result, session, policy, dest_dir, stem=stem, verify=verify)


async def collect(
    result: RemixResult,
    session: aiohttp.ClientSession,
    policy: DownloadPolicy,
    dest_dir: Path,
    *,
    stem: str = "result",
    verify: Verify | None = None,
) -> Delivery:
    """Download every safe image of a backend result at once and account for the rest.

    With `verify`, each saved image is also checked: a PNG as its bytes arrive (`PngStream`,
    in the download's writer thread), and decoded after the download when that could not vouch
    for it or it is not a PNG. A damaged one counts as not downloaded (not posted, not
    charged) and its file is listed in `Delivery.damaged` for the caller to keep.
    """

    async def checked(saved: DownloadedImage) -> DownloadedImage | DownloadError:
        assert verify is not None
        return await _verified(saved, verify)  # type: ignore[return-value]

    outcomes = await download_all(
        session,
        result.images,
        dest_dir,
        policy,
        stem=stem,
        then=checked if verify else None,
        watch=watch_result if verify else None,
    )
    delivered: list[DeliveredImage] = []
    errors: list[str] = []
    damaged: list[Path] = []
    withheld = 0
    for source, outcome in zip(result.images, outcomes, strict=True):
        if outcome is None:
            withheld += 1
        elif isinstance(outcome, _Damaged):
            errors.append(str(outcome))
            damaged.append(outcome.path)
        elif isinstance(outcome, DownloadError):
            errors.append(str(outcome))
        else:
            assert isinstance(outcome, DownloadedImage)
            delivered.append(
                DeliveredImage(
                    path=outcome.path,
                    seed=source.seed,
                    resolution=source.resolution,
                    prompt=source.prompt,
                    format=outcome.format,
                )
            )
    return Delivery(
        images=delivered,
        withheld=withheld,
        failed_downloads=len(errors),
        backend_ref=result.backend_ref,
        # Every image the backend produced is billed, withheld ones included (Ideogram's rule).
        billed=len(result.images),
        backend=result.backend,
        errors=errors,
        damaged=damaged,
    )


class _Damaged(DownloadError):
    """A result that downloaded but does not decode; its file stays at `path`."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


async def _verified(
    outcome: DownloadedImage | DownloadError | None, verify: Verify
) -> DownloadedImage | DownloadError | None:
    """The outcome, or a _Damaged error (file kept) when the saved image does not decode."""
    if not isinstance(outcome, DownloadedImage):
        return outcome
    try:
        await verify(outcome.path, whole=outcome.whole)
    except InvalidImage as exc:
        log.warning("result image %d not delivered: %s", outcome.index + 1, exc)
        return _Damaged(f"{exc} It was not posted.", outcome.path)
    return outcome

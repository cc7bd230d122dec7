"""The `Backend` protocol and the result types every backend returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.media import EncodedImage
from bot.remix.request import RemixRequest

OnSubmitted = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ResultImage:
    """One generated image: a URL to fetch or inline bytes, plus what the backend said about it."""

    url: str | None
    data: bytes | None = None
    seed: int | None = None
    resolution: str | None = None
    is_safe: bool = True
    prompt: str | None = None

    @property
    def deliverable(self) -> bool:
        """Safe and carrying a URL or bytes; otherwise it is withheld, not an error."""
        return self.is_safe and bool(self.url or self.data)

    def __repr__(self) -> str:  # URLs carry signatures and data may be megabytes: keep both out
        where = "data" if self.data else ("url" if self.url else "none")
        return (
            f"ResultImage({where}, seed={self.seed}, resolution={self.resolution}, "
            f"is_safe={self.is_safe})"
        )


@dataclass(frozen=True)
class RemixResult:
    """What one backend call produced (every image is billed, withheld ones included)."""

    images: list[ResultImage]
    backend: str
    backend_ref: str | None = None


@runtime_checkable
class Backend(Protocol):
    """A remix backend: refuses what it cannot express, then runs one paid call."""

    name: str
    # True when a job saved with its task id (`on_submitted`) can be finished after a restart
    # (`resume(task_id)`); the store's reconcile asks the caller for these backends' names.
    resumable: bool = False
    # Whether remix() takes a mask (black = change, white = keep) of exactly the image's size.
    takes_mask: bool

    def check(self, request: RemixRequest, refs_count: int) -> None:
        """Raise InvalidRequest for options this backend cannot express (before any spend)."""
        ...

    async def remix(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        *,
        mask: EncodedImage | None = None,
        on_submitted: OnSubmitted | None = None,
    ) -> RemixResult:
        """Run the remix once (under `mask` if given); map every failure into a RemixError."""
        ...

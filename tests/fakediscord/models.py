"""What the fake Discord holds and records: messages, attachments, interactions, calls and frames."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class UploadedFile:
    """One file part of a multipart request (``files[n]``)."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One recorded REST or CDN request and the status the fake answered."""

    method: str
    path: str  # relative to the API base for REST ("/users/@me"), absolute for the CDN
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    files: list[UploadedFile]
    status: int = 0
    at: float = 0.0

    @property
    def route(self) -> str:
        """``METHOD path`` for quick matching."""
        return f"{self.method} {self.path}"


@dataclass
class GatewayFrame:
    """One gateway frame, in either direction, with the connection it travelled on."""

    direction: str  # "in" (from the bot) or "out" (to the bot)
    conn: int
    op: int
    t: str | None
    d: Any
    s: int | None


@dataclass
class StoredAttachment:
    """A file the fake holds on its CDN."""

    id: str
    channel_id: str
    filename: str
    content_type: str
    data: bytes
    description: str | None = None


@dataclass
class StoredMessage:
    """A message in a channel, as the fake holds it."""

    id: str
    channel_id: str
    author: dict[str, Any]
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    webhook_id: str | None = None
    interaction_id: str | None = None
    reactions: dict[str, set[str]] = field(default_factory=dict)
    edited: bool = False
    deleted: bool = False
    nonce: str | None = None
    reference: str | None = None  # the message this one replies to
    created: float = field(default_factory=time.time)

    def component(self, custom_id: str) -> dict[str, Any] | None:
        """The component with this custom_id (rows searched), or None."""

        def walk(items: list[dict[str, Any]]) -> dict[str, Any] | None:
            for item in items:
                if item.get("custom_id") == custom_id:
                    return item
                found = walk(item.get("components", []))
                if found is not None:
                    return found
            return None

        return walk(self.components)

    def custom_ids(self) -> list[str]:
        """Every component custom_id in the message (rows and their children)."""
        found: list[str] = []

        def walk(items: list[dict[str, Any]]) -> None:
            for item in items:
                if "custom_id" in item:
                    found.append(item["custom_id"])
                walk(item.get("components", []))

        walk(self.components)
        return found

    @property
    def loading(self) -> bool:
        """True while a deferred response still shows "thinking"."""
        return bool(self.flags & 128)

    @property
    def ephemeral(self) -> bool:
        """True for a message only the invoking member sees (flag 64)."""
        return bool(self.flags & 64)


@dataclass(frozen=True)
class ChannelRef:
    """A channel option's value in ``FakeDiscord.slash`` (sent as type 7, resolved)."""

    id: str


@dataclass(frozen=True)
class RoleRef:
    """A role option's value in ``FakeDiscord.slash`` (sent as type 8, resolved)."""

    id: str


@dataclass
class FakeInteraction:
    """An interaction the fake sent, with the state of its response."""

    id: str
    token: str
    type: int
    channel_id: str
    user_id: str
    created: float
    message_id: str | None = None  # the clicked message, for components
    response_type: int | None = None
    original_id: str | None = None
    expired: bool = False
    modal: dict[str, Any] | None = None  # the modal a type-9 response opened
    acknowledged: float | None = None  # the fake's clock when the callback was accepted
    missed_deadline: bool = False  # a callback came after `World.ack_deadline`

    @property
    def ack_seconds(self) -> float | None:
        """Seconds from the interaction's creation to its accepted callback (None: none yet)."""
        return None if self.acknowledged is None else self.acknowledged - self.created


def guess_type(filename: str, data: bytes) -> str:
    """The content type of a file from its first bytes (the filename is not trusted)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"


def png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG header, or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None

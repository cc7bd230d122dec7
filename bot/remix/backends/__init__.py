"""Remix backends behind one interface; `make_backend` picks the one named in the settings."""

from __future__ import annotations

import aiohttp

from bot.remix import enums
from bot.remix.backends.base import Backend, OnSubmitted, RemixResult, ResultImage
from bot.remix.backends.ideogram_edit import IdeogramEditBackend
from bot.remix.backends.ideogram_legacy import IdeogramLegacyBackend
from bot.remix.backends.ideogram_v3 import IdeogramV3Backend
from bot.remix.backends.runware import RunwareBackend
from bot.remix.backends.task_proxy import TaskProxyBackend, task_format
from bot.settings import Settings

BACKEND_CLASSES: dict[str, type] = {
    "ideogram": IdeogramV3Backend,
    "ideogram-legacy": IdeogramLegacyBackend,
    "ideogram-edit": IdeogramEditBackend,
    "runware": RunwareBackend,
    "task-proxy": TaskProxyBackend,
}


def make_backend(settings: Settings, session: aiohttp.ClientSession) -> Backend:
    """The backend named by settings.backend, sending its calls through `session`."""
    return BACKEND_CLASSES[settings.backend](settings, session)


def takes_mask(settings: Settings) -> bool:
    """Whether the configured backend edits under a mask (known before any session exists)."""
    return bool(BACKEND_CLASSES[settings.backend].takes_mask)


def intake_ratios(settings: Settings) -> tuple[str, ...]:
    """The aspect ratios the configured backend's body can carry, for intake to crop to."""
    legacy_body = settings.backend == "ideogram-legacy" or (
        settings.backend == "task-proxy" and task_format(settings) == "legacy"
    )
    return enums.LEGACY_ASPECT_RATIOS if legacy_body else enums.ASPECT_RATIOS


__all__ = [
    "BACKEND_CLASSES",
    "Backend",
    "IdeogramEditBackend",
    "IdeogramLegacyBackend",
    "IdeogramV3Backend",
    "OnSubmitted",
    "RemixResult",
    "ResultImage",
    "RunwareBackend",
    "TaskProxyBackend",
    "intake_ratios",
    "make_backend",
    "takes_mask",
]

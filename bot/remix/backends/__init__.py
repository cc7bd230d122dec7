"""Remix backends behind one interface; `make_backend` picks the one named in the settings."""

from __future__ import annotations

import aiohttp

from bot.remix.backends.base import Backend, OnSubmitted, RemixResult, ResultImage
from bot.remix.backends.demo import DemoBackend
from bot.remix.backends.ideogram_edit import IdeogramEditBackend
from bot.remix.backends.ideogram_legacy import IdeogramLegacyBackend
from bot.remix.backends.ideogram_v3 import IdeogramV3Backend
from bot.remix.backends.runware import RunwareBackend
from bot.remix.backends.task_proxy import TaskProxyBackend
from bot.settings import Settings

BACKEND_CLASSES: dict[str, type] = {
    "ideogram": IdeogramV3Backend,
    "ideogram-legacy": IdeogramLegacyBackend,
    "ideogram-edit": IdeogramEditBackend,
    "runware": RunwareBackend,
    "task-proxy": TaskProxyBackend,
    "demo": DemoBackend,
}


def make_backend(settings: Settings, session: aiohttp.ClientSession) -> Backend:
    """The backend named by settings.backend, sending its calls through `session`."""
    return BACKEND_CLASSES[settings.backend](settings, session)


__all__ = [
    "BACKEND_CLASSES",
    "Backend",
    "DemoBackend",
    "IdeogramEditBackend",
    "IdeogramLegacyBackend",
    "IdeogramV3Backend",
    "OnSubmitted",
    "RemixResult",
    "ResultImage",
    "RunwareBackend",
    "TaskProxyBackend",
    "make_backend",
]

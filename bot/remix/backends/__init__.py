"""Remix backends behind one interface; `make_backend` picks the one named in the settings."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bot.remix.backends.base import Backend, OnSubmitted, RemixResult, ResultImage
from bot.remix.backends.demo import DemoBackend
from bot.remix.backends.ideogram_edit import IdeogramEditBackend
from bot.remix.backends.ideogram_legacy import IdeogramLegacyBackend
from bot.remix.backends.ideogram_v3 import IdeogramV3Backend
from bot.remix.backends.runware import RunwareBackend
from bot.remix.backends.task_proxy import TaskProxyBackend
from bot.settings import SPECS, Settings

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


@dataclass(frozen=True)
class ModelSetting:
    """What the chosen backend makes of REMIXBOT_MODEL: a sentence when it cannot use it
    (`refused`: the bot does not start, `remixbot check` fails) or ignores it (`ignored`)."""

    refused: str = ""
    ignored: str = ""


def model_setting(settings: Settings) -> ModelSetting:
    """Judge REMIXBOT_MODEL by the backend's own list of models (the one its requests are
    checked against), so a model it would refuse on every /remix is reported once, at start."""
    backend = BACKEND_CLASSES[settings.backend]
    models = backend.models_for(settings)
    where = backend.where_for(settings)
    value = settings.model  # the backend's default when unset (settings.BACKEND_DEFAULTS)
    env = SPECS["model"].env
    if not value:
        return ModelSetting()
    if not models:
        return ModelSetting(
            ignored=f"{env} is {value!r}, but {where} takes no model, so it is ignored; unset it."
        )
    if value not in models:
        return ModelSetting(
            refused=f"{env} is {value!r}, which {where} cannot use; set one of {', '.join(models)}."
        )
    return ModelSetting()


__all__ = [
    "BACKEND_CLASSES",
    "Backend",
    "DemoBackend",
    "IdeogramEditBackend",
    "IdeogramLegacyBackend",
    "IdeogramV3Backend",
    "ModelSetting",
    "OnSubmitted",
    "RemixResult",
    "ResultImage",
    "RunwareBackend",
    "TaskProxyBackend",
    "make_backend",
    "model_setting",
]

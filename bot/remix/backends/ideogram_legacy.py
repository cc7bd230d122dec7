"""Ideogram legacy `POST {base}/remix`: `image_request` JSON part + `image_file`, synchronous.

The body's rules and encoding are functions of their own, so the task proxy can send the same
body to a reseller's `/ideogram/remix` without a second copy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from bot.errors import InvalidRequest
from bot.media import EncodedImage
from bot.remix import enums
from bot.remix.backends.http import SyncFormBackend
from bot.remix.request import RemixRequest
from bot.settings import LEGACY_TASK_MODEL

# Ideogram: resolution is "for model_version 2.0 only"; other models are refused here, free,
# rather than accepted and refused by the backend after the member waited.
RESOLUTION_MODELS = frozenset({"V_2", "V_2_TURBO"})
NO_STYLE_TYPE = frozenset({"V_1", "V_1_TURBO"})
# Ideogram's documented default model of the legacy body (the direct backend's settings default
# to V_3 before this is reached; a task proxy's legacy body uses this).
DEFAULT_MODEL = LEGACY_TASK_MODEL


def legacy_size(value: str, prefix: str) -> str:
    """`16x9` -> `ASPECT_16_9`; `1024x768` -> `RESOLUTION_1024_768`."""
    return f"{prefix}_{value.replace('x', '_')}"


def choose_model(
    where: str, request: RemixRequest, configured: str, models: tuple[str, ...]
) -> str:
    """The model to send: the request's override, else the configured one, else V_2."""
    model = request.model or configured or DEFAULT_MODEL
    if model not in models:
        raise InvalidRequest(f"model must be one of {', '.join(models)} on {where}, not {model!r}.")
    return model


def refuse_present(where: str, options: Sequence[tuple[str, object]], why: str) -> None:
    """Refuse the first option that was given (a truthy value) which `where` cannot carry."""
    for label, value in options:
        if value:
            raise InvalidRequest(f"{label} cannot be used on {where} ({why}); leave it out.")


def check_style_type(where: str, request: RemixRequest, model: str, allowed: Sequence[str]) -> None:
    """A legacy-style style_type: one of `allowed`, and none at all for the V_1 models."""
    if request.style_type is None:
        return
    if request.style_type not in allowed:
        raise InvalidRequest(
            f"style_type must be one of {', '.join(allowed)} on {where}, "
            f"not {request.style_type!r}."
        )
    if model in NO_STYLE_TYPE:
        raise InvalidRequest(f"style_type is not supported by model {model}; use V_2 or later.")


def check_legacy(
    where: str,
    request: RemixRequest,
    refs_count: int,
    model: str,
    style_types: Sequence[str] = enums.LEGACY_STYLE_TYPES,
) -> None:
    """Refuse what the legacy body or the chosen model cannot take (`style_types`: the ones the
    endpoint lists)."""
    refuse_present(
        where,
        [
            ("style_preset", request.style_preset),
            ("style codes", request.style_codes),
            ("style reference images", refs_count or request.style_ref_count),
            ("rendering_speed", request.rendering_speed),
        ],
        "it is an Ideogram 3.0 option",
    )
    if request.aspect_ratio is not None and request.aspect_ratio not in enums.LEGACY_ASPECT_RATIOS:
        raise InvalidRequest(
            "aspect_ratio must be one of "
            f"{', '.join(enums.LEGACY_ASPECT_RATIOS)} on {where}, "
            f"not {request.aspect_ratio!r}."
        )
    if request.resolution is not None:
        if request.resolution not in enums.LEGACY_RESOLUTIONS:
            raise InvalidRequest(
                f"resolution must be one of the {len(enums.LEGACY_RESOLUTIONS)} legacy "
                f"resolutions such as 1024x1024, not {request.resolution!r}."
            )
        if model not in RESOLUTION_MODELS:
            raise InvalidRequest(
                f"resolution is only available with model V_2 or V_2_TURBO, not {model}; "
                "use an aspect ratio."
            )
    if request.has_palette and model in enums.LEGACY_NO_PALETTE:
        raise InvalidRequest(
            f"a color palette is not supported by model {model}; use V_2, V_2_TURBO or V_3."
        )
    if request.negative_prompt is not None and model not in enums.LEGACY_NEGATIVE_OK:
        raise InvalidRequest(
            f"negative_prompt is not supported by model {model}; only "
            f"{', '.join(sorted(enums.LEGACY_NEGATIVE_OK))} take one."
        )
    check_style_type(where, request, model, style_types)


def legacy_image_request(request: RemixRequest, model: str) -> dict[str, Any]:
    """The `image_request` JSON object."""
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "image_weight": request.image_weight,
        "model": model,
        "num_images": request.num_images,
    }
    if request.aspect_ratio is not None:
        body["aspect_ratio"] = legacy_size(request.aspect_ratio, "ASPECT")
    if request.resolution is not None:
        body["resolution"] = legacy_size(request.resolution, "RESOLUTION")
    if request.magic_prompt is not None:
        body["magic_prompt_option"] = request.magic_prompt
    if request.seed is not None:
        body["seed"] = request.seed
    if request.style_type is not None:
        body["style_type"] = request.style_type
    if request.negative_prompt is not None:
        body["negative_prompt"] = request.negative_prompt
    palette = request.palette_dict()
    if palette is not None:
        body["color_palette"] = palette
    return body


def legacy_form(request: RemixRequest, image: EncodedImage, model: str) -> aiohttp.FormData:
    """The multipart body: `image_request` (application/json) and `image_file`."""
    form = aiohttp.FormData()
    form.add_field(
        "image_request",
        json.dumps(legacy_image_request(request, model)),
        content_type="application/json",
    )
    form.add_field(
        "image_file", image.data, filename=image.filename("image"), content_type=image.mime
    )
    return form


class IdeogramLegacyBackend(SyncFormBackend):
    """Ideogram's legacy `/remix` (models V_1 … V_3) and resellers serving the same format."""

    name = "ideogram-legacy"
    where = "the ideogram-legacy backend"
    aspect_ratios = enums.LEGACY_ASPECT_RATIOS
    models = enums.LEGACY_MODELS

    def model_for(self, request: RemixRequest) -> str:
        """The model to send: the request's override, else the configured one."""
        return choose_model(self.where, request, self.settings.model, self.models)

    def check_options(self, request: RemixRequest, refs_count: int) -> None:
        """Refuse what the legacy endpoint or the chosen model cannot take."""
        check_legacy(self.where, request, refs_count, self.model_for(request))

    def form(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        mask: EncodedImage | None,
    ) -> aiohttp.FormData:
        """`image_request` + `image_file`."""
        return legacy_form(request, image, self.model_for(request))

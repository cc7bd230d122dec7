"""Ideogram legacy `POST {base}/remix`: `image_request` JSON part + `image_file`, synchronous."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from bot.errors import InvalidRequest
from bot.media import EncodedImage
from bot.remix import enums
from bot.remix.backends.base import OnSubmitted, RemixResult
from bot.remix.backends.http import HttpBackend, parse_ideogram_images
from bot.remix.request import RemixRequest

# Ideogram: resolution is "for model_version 2.0 only"; other models are refused here, free,
# rather than accepted and refused by the backend after the member waited.
RESOLUTION_MODELS = frozenset({"V_2", "V_2_TURBO"})
NO_STYLE_TYPE = frozenset({"V_1", "V_1_TURBO"})


def legacy_size(value: str, prefix: str) -> str:
    """`16x9` -> `ASPECT_16_9`; `1024x768` -> `RESOLUTION_1024_768`."""
    return f"{prefix}_{value.replace('x', '_')}"


class IdeogramLegacyBackend(HttpBackend):
    """Ideogram's legacy `/remix` (models V_1 … V_3) and resellers serving the same format."""

    name = "ideogram-legacy"
    # The ratios this format can send; intake auto-picks only among these.
    aspect_ratios = enums.LEGACY_ASPECT_RATIOS

    def model_for(self, request: RemixRequest) -> str:
        """The model to send: the request's override, else the configured one."""
        model = request.model or self.settings.model or "V_2"
        if model not in enums.LEGACY_MODELS:
            raise InvalidRequest(
                f"model must be one of {', '.join(enums.LEGACY_MODELS)} on the "
                f"ideogram-legacy backend, not {model!r}."
            )
        return model

    def check(self, request: RemixRequest, refs_count: int) -> None:
        """Refuse what the legacy endpoint or the chosen model cannot take."""
        model = self.model_for(request)
        cannot = [
            ("style_preset", request.style_preset),
            ("style codes", request.style_codes),
            ("style reference images", refs_count or request.style_ref_count),
            ("rendering_speed", request.rendering_speed),
        ]
        for label, value in cannot:
            if value:
                raise InvalidRequest(
                    f"{label} cannot be used on the ideogram-legacy backend (it is an Ideogram "
                    "3.0 option); use the ideogram backend or leave it out."
                )
        if (
            request.aspect_ratio is not None
            and request.aspect_ratio not in enums.LEGACY_ASPECT_RATIOS
        ):
            raise InvalidRequest(
                "aspect_ratio must be one of "
                f"{', '.join(enums.LEGACY_ASPECT_RATIOS)} on the ideogram-legacy backend, "
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
        if request.style_type is not None and model in NO_STYLE_TYPE:
            raise InvalidRequest(f"style_type is not supported by model {model}; use V_2 or later.")

    def image_request(self, request: RemixRequest) -> dict[str, Any]:
        """The `image_request` JSON object."""
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "image_weight": request.image_weight,
            "model": self.model_for(request),
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

    def form(self, request: RemixRequest, image: EncodedImage) -> aiohttp.FormData:
        """The multipart body: `image_request` (application/json) and `image_file`."""
        form = aiohttp.FormData()
        form.add_field(
            "image_request",
            json.dumps(self.image_request(request)),
            content_type="application/json",
        )
        form.add_field(
            "image_file", image.data, filename=image.filename("image"), content_type=image.mime
        )
        return form

    async def _submit(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        on_submitted: OnSubmitted | None,
    ) -> RemixResult:
        """One synchronous call; images come back in the reply."""
        body = await self.post(
            self.settings.remix_path, lambda: {"data": self.form(request, image)}
        )
        return RemixResult(images=parse_ideogram_images(body), backend=self.name)

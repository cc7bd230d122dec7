"""Ideogram 3.0 Remix: `POST {base}/v1/ideogram-v3/remix`, multipart form, synchronous."""

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


def check_v3(name: str, request: RemixRequest, refs_count: int) -> None:
    """Refuse what the v3 form cannot carry (legacy-only values, model overrides)."""
    if request.model is not None:
        raise InvalidRequest(
            f"model cannot be chosen on the {name} backend (Ideogram 3.0 only), not "
            f"{request.model!r}; it applies to ideogram-legacy and runware."
        )
    if request.style_type is not None and request.style_type not in enums.STYLE_TYPES:
        raise InvalidRequest(
            f"style_type must be one of {', '.join(enums.STYLE_TYPES)} on the {name} backend, "
            f"not {request.style_type!r}."
        )
    if request.resolution is not None and request.resolution not in enums.RESOLUTIONS:
        raise InvalidRequest(
            f"resolution must be one of the {len(enums.RESOLUTIONS)} Ideogram 3.0 resolutions "
            f"such as 1024x1024, not {request.resolution!r}."
        )
    if refs_count > enums.MAX_STYLE_REFS:
        raise InvalidRequest(
            f"style reference images must be at most {enums.MAX_STYLE_REFS}, not {refs_count}."
        )
    if refs_count and request.style_codes:
        raise InvalidRequest(
            "style codes cannot be combined with style reference images; choose one."
        )


def v3_form(
    request: RemixRequest, image: EncodedImage, refs: Sequence[EncodedImage]
) -> aiohttp.FormData:
    """The multipart body of Ideogram 3.0 Remix, field by field as the reference documents."""
    form = aiohttp.FormData()
    form.add_field("image", image.data, filename=image.filename("image"), content_type=image.mime)
    form.add_field("prompt", request.prompt)
    form.add_field("image_weight", str(request.image_weight))
    form.add_field("num_images", str(request.num_images))
    optional: dict[str, Any] = {
        "seed": request.seed,
        "aspect_ratio": request.aspect_ratio,
        "resolution": request.resolution,
        "rendering_speed": request.rendering_speed,
        "magic_prompt": request.magic_prompt,
        "negative_prompt": request.negative_prompt,
        "style_type": request.style_type,
        "style_preset": request.style_preset,
    }
    for key, value in optional.items():
        if value is not None:
            form.add_field(key, str(value))
    palette = request.palette_dict()
    if palette is not None:
        form.add_field("color_palette", json.dumps(palette), content_type="application/json")
    # Array encoding is unconfirmed; a repeated field is how OpenAPI multipart arrays are sent.
    for code in request.style_codes:
        form.add_field("style_codes", code)
    for i, ref in enumerate(refs):
        form.add_field(
            "style_reference_images",
            ref.data,
            filename=ref.filename(f"style-{i + 1}"),
            content_type=ref.mime,
        )
    return form


class IdeogramV3Backend(SyncFormBackend):
    """Ideogram 3.0 Remix (the default backend)."""

    name = "ideogram"

    def check_options(self, request: RemixRequest, refs_count: int) -> None:
        """Refuse options the v3 endpoint cannot express."""
        check_v3(self.name, request, refs_count)

    def form(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        mask: EncodedImage | None,
    ) -> aiohttp.FormData:
        """The v3 form."""
        return v3_form(request, image, refs)

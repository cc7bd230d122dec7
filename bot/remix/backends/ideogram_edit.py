"""A reseller's synchronous `POST {base}/ideogram/edit`: flat multipart fields, an optional mask.

Fields as the reseller documents them: `image_file`, `mask`, `prompt`, `model` (V_1 … V_2_TURBO),
`magic_prompt_option`, `seed`, `style_type`; the reply is Ideogram's synchronous body. The mask
is black where the picture may change and white where it is kept, exactly the image's size. Its
page marks `mask` optional, so without one the field is left out and the whole image is edited.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from bot.errors import InvalidRequest
from bot.media import EncodedImage
from bot.remix import enums
from bot.remix.backends.http import SyncFormBackend
from bot.remix.backends.ideogram_legacy import check_style_type, choose_model, refuse_present
from bot.remix.request import RemixRequest

DEFAULT_IMAGE_WEIGHT = 50  # RemixRequest's default: the only value an edit can honour


def edit_form(
    request: RemixRequest, image: EncodedImage, mask: EncodedImage | None, model: str
) -> aiohttp.FormData:
    """The multipart body, every field flat (no `image_request` JSON)."""
    form = aiohttp.FormData()
    form.add_field(
        "image_file", image.data, filename=image.filename("image"), content_type=image.mime
    )
    if mask is not None:
        form.add_field("mask", mask.data, filename=mask.filename("mask"), content_type=mask.mime)
    form.add_field("prompt", request.prompt)
    form.add_field("model", model)
    if request.magic_prompt is not None:
        form.add_field("magic_prompt_option", request.magic_prompt)
    if request.seed is not None:
        form.add_field("seed", str(request.seed))
    if request.style_type is not None:
        form.add_field("style_type", request.style_type)
    return form


class IdeogramEditBackend(SyncFormBackend):
    """The reseller's edit endpoint: one image, edited where the mask is black (or everywhere)."""

    name = "ideogram-edit"
    where = "the ideogram-edit backend"
    takes_mask = True
    models = enums.EDIT_MODELS

    def model_for(self, request: RemixRequest) -> str:
        """The model to send: the request's override, else REMIXBOT_MODEL (default V_2_TURBO)."""
        return choose_model(self.where, request, self.settings.model, self.models)

    def check_options(self, request: RemixRequest, refs_count: int) -> None:
        """Refuse what the edit fields cannot carry; an aspect ratio is honoured by the crop."""
        model = self.model_for(request)
        refuse_present(
            self.where,
            [
                ("image_weight", request.image_weight != DEFAULT_IMAGE_WEIGHT),
                ("resolution", request.resolution),
                ("rendering_speed", request.rendering_speed),
                ("negative_prompt", request.negative_prompt),
                ("a color palette", request.has_palette),
                ("style_preset", request.style_preset),
                ("style codes", request.style_codes),
                ("style reference images", refs_count or request.style_ref_count),
            ],
            "the edit endpoint has no such field",
        )
        if request.num_images != 1:
            raise InvalidRequest(
                f"num_images must be 1 on {self.where} (the edit endpoint has no num_images "
                f"field), not {request.num_images}."
            )
        check_style_type(self.where, request, model, enums.EDIT_STYLE_TYPES)

    def form(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        mask: EncodedImage | None,
    ) -> aiohttp.FormData:
        """The flat edit fields, with the mask when there is one."""
        return edit_form(request, image, mask, self.model_for(request))

"""Runware `imageInference` for the Ideogram remix models: a JSON task array, Bearer auth.

Where the source image goes is documented two ways: Runware's provider page and API reference
show a top-level `referenceImages`, the model pages (ideogram:1@2 …) say input resources "must be
nested inside the inputs object" (`inputs.referenceImages`). REMIXBOT_RUNWARE_IMAGE_IN pins one;
`auto` sends the top-level form until the server has taken one, and after an HTTP 400 whose
error names `referenceImages` or `inputs` (a validation refusal: nothing ran, nothing billed, so
sending again is safe) sends the task once more with `inputs.referenceImages`. The place the
server takes is kept for the rest of the process. Nothing else is ever resent.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import uuid
from collections.abc import Sequence
from typing import Any

from bot.errors import InvalidRequest, RemixOutcomeUnknown, RemixRejected
from bot.media import EncodedImage
from bot.remix import enums
from bot.remix.backends.base import OnSubmitted, RemixResult, ResultImage
from bot.remix.backends.http import (
    HttpBackend,
    backend_reason,
    check_count,
    map_status,
    mentions_safety,
)
from bot.remix.request import RemixRequest

log = logging.getLogger(__name__)

V3_MODEL = "ideogram:4@2"  # Ideogram 3.0 Remix
V2A_MODEL = "ideogram:2@2"  # Ideogram 2a Remix: no negative prompt
V3_STYLE_TYPES = ("AUTO", "GENERAL", "REALISTIC", "DESIGN", "FICTION")
OLD_STYLE_TYPES = (*V3_STYLE_TYPES, "RENDER_3D", "ANIME")
MAX_STYLE_REFS = 4  # providerSettings.ideogram.styleReferenceImages: 1-4 images
# Where the source image goes (REMIXBOT_RUNWARE_IMAGE_IN), and how each is named in messages.
TOP, INPUTS, AUTO = "top", "inputs", "auto"
PLACES = {TOP: "as top-level referenceImages", INPUTS: "as inputs.referenceImages"}
_PLACE_WORDS = re.compile(r"(?<![A-Za-z])(?:referenceImages|inputs)(?![A-Za-z])")


def remix_strength(image_weight: int) -> int:
    """Runware's remixStrength (higher: more change) from image_weight (higher: more kept).

    100 - w, so the two defaults meet (50 <-> 50); at least 1, Runware's minimum (99 and 100 -> 1).
    """
    return max(1, 100 - image_weight)


def nearest_size(allowed: Sequence[str], ratio: float) -> tuple[int, int]:
    """The allowed WxH whose ratio is nearest (in log space) to `ratio`; ties go to the larger."""

    def key(size: str) -> tuple[float, int]:
        w, h = (int(x) for x in size.split("x"))
        return (abs(math.log(w / h) - math.log(ratio)), -(w * h))

    w, h = (int(x) for x in min(allowed, key=key).split("x"))
    return w, h


def names_image_place(body: bytes | str) -> bool:
    """Whether a reply in Runware's error envelope (`{"errors": [{code, message, parameter}]}`)
    names `referenceImages` or `inputs`, where the source image goes."""
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return False
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    return isinstance(errors, list) and any(
        isinstance(error, dict)
        and any(
            isinstance(error.get(key), str) and _PLACE_WORDS.search(error[key])
            for key in ("parameter", "message")
        )
        for error in errors
    )


def data_uri(image: EncodedImage) -> str:
    """The image as a `data:` URI (one of the forms Runware takes for referenceImages)."""
    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode('ascii')}"


class RunwareBackend(HttpBackend):
    """Runware's REST API with the Ideogram remix models (ideogram:1@2 … ideogram:4@2)."""

    name = "runware"
    models = enums.RUNWARE_REMIX_MODELS
    # Under `auto`: the place this server has taken the source image (None until one worked).
    _settled: str | None = None

    def image_in(self) -> str:
        """Where the source image goes now: the setting, or under `auto` the place the server
        took (top-level until then)."""
        setting = self.settings.runware_image_in
        return setting if setting != AUTO else (self._settled or TOP)

    def model_for(self, request: RemixRequest) -> str:
        """The AIR id to send: the request's override, else the configured one."""
        model = request.model or self.settings.model or V3_MODEL
        if model not in self.models:
            raise InvalidRequest(
                f"model must be one of {', '.join(self.models)} on the runware "
                f"backend, not {model!r}."
            )
        return model

    def size_for(self, request: RemixRequest, model: str) -> tuple[int, int]:
        """Width and height: the resolution if the model allows it, else the nearest ratio."""
        allowed = enums.RUNWARE_SIZES[model]
        if request.resolution is not None:
            if request.resolution not in allowed:
                raise InvalidRequest(
                    f"resolution {request.resolution} is not allowed for {model} on Runware; "
                    f"use an aspect ratio or one of its {len(allowed)} sizes."
                )
            w, h = (int(x) for x in request.resolution.split("x"))
            return w, h
        return nearest_size(allowed, enums.ratio_value(request.aspect_ratio or "1x1"))

    def check_options(self, request: RemixRequest, refs_count: int) -> None:
        """Refuse what Runware's Ideogram remix models cannot take."""
        model = self.model_for(request)
        is_v3 = model == V3_MODEL
        self.size_for(request, model)
        if request.has_palette:
            raise InvalidRequest(
                "a color palette is not available on the runware backend (Runware takes it only "
                "for text-to-image ideogram:3@1); leave it out or use the ideogram backend."
            )
        speeds = enums.RUNWARE_RENDERING_SPEEDS if is_v3 else ("TURBO", "DEFAULT")
        if request.rendering_speed is not None and request.rendering_speed not in speeds:
            raise InvalidRequest(
                f"rendering_speed must be one of {', '.join(speeds)} for {model} on Runware, "
                f"not {request.rendering_speed!r}."
            )
        styles = V3_STYLE_TYPES if is_v3 else OLD_STYLE_TYPES
        if request.style_type is not None and request.style_type not in styles:
            raise InvalidRequest(
                f"style_type must be one of {', '.join(styles)} for {model} on Runware, "
                f"not {request.style_type!r}."
            )
        if request.style_preset is not None and not is_v3:
            raise InvalidRequest(
                f"style_preset needs Ideogram 3.0 ({V3_MODEL}) on Runware, not {model}."
            )
        if request.style_codes and not is_v3:
            raise InvalidRequest(
                f"style codes need Ideogram 3.0 ({V3_MODEL}) on Runware, not {model}."
            )
        if request.style_codes:
            # Runware: styleCode "cannot be used together with styleType or referenceImages",
            # and a remix always sends its input as referenceImages.
            raise InvalidRequest(
                "style codes cannot be used for a remix on the runware backend (Runware refuses "
                "them with a reference image); leave them out or use the ideogram backend."
            )
        if request.negative_prompt is not None and model == V2A_MODEL:
            raise InvalidRequest(
                f"negative_prompt is not supported by {model} (Ideogram 2a) on Runware."
            )
        if request.seed == 0:
            raise InvalidRequest("seed must be from 1 to 2147483647 on Runware, not 0.")
        if refs_count > MAX_STYLE_REFS:
            raise InvalidRequest(
                f"style reference images must be at most {MAX_STYLE_REFS} on Runware, "
                f"not {refs_count}."
            )

    def task(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        task_id: str,
        image_in: str | None = None,
    ) -> dict[str, Any]:
        """The imageInference task object, the source image where `image_in` (default: where
        :meth:`image_in` says) puts it."""
        model = self.model_for(request)
        width, height = self.size_for(request, model)
        ideogram: dict[str, Any] = {"remixStrength": remix_strength(request.image_weight)}
        if request.rendering_speed is not None:
            ideogram["renderingSpeed"] = request.rendering_speed
        if request.magic_prompt is not None:
            ideogram["magicPrompt"] = request.magic_prompt
        if request.style_type is not None:
            ideogram["styleType"] = request.style_type
        if request.style_preset is not None:
            ideogram["stylePreset"] = request.style_preset
        if refs:
            ideogram["styleReferenceImages"] = [data_uri(r) for r in refs]
        task: dict[str, Any] = {
            "taskType": "imageInference",
            "taskUUID": task_id,
            "model": model,
            "positivePrompt": request.prompt,
            **(
                {"inputs": {"referenceImages": [data_uri(image)]}}
                if (image_in or self.image_in()) == INPUTS
                else {"referenceImages": [data_uri(image)]}
            ),
            "width": width,
            "height": height,
            "numberResults": request.num_images,
            "outputType": "URL",
            "deliveryMethod": "sync",
            "providerSettings": {"ideogram": ideogram},
        }
        if request.negative_prompt is not None:
            task["negativePrompt"] = request.negative_prompt
        if request.seed is not None:
            task["seed"] = request.seed
        return task

    async def _submit(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        mask: EncodedImage | None,
        on_submitted: OnSubmitted | None,
    ) -> RemixResult:
        """One synchronous task; under `auto`, sent once more with the image inside `inputs` after
        a 400 that names where the image goes (nothing ran), until the server has taken one."""
        place = self.image_in()
        try:
            result = await self._run(request, image, refs, place)
        except _PlaceRefused as refused:
            if self.settings.runware_image_in != AUTO:
                raise RemixRejected(
                    f"The runware backend rejected the request (HTTP 400): {refused.reason}; "
                    f"REMIXBOT_RUNWARE_IMAGE_IN={place} sends the source image {PLACES[place]} "
                    "only (auto tries both).",
                    safety=refused.safety,
                ) from None
            if self._settled is not None or refused.safety:
                # This server has taken the image there before, or it refused the content: the
                # refusal is of the image, and flagged content is never sent twice.
                raise refused.error from None
            place = INPUTS
            result = await self._second_place(request, image, refs, refused)
        self._settle(place)
        return result

    async def _second_place(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        first: _PlaceRefused,
    ) -> RemixResult:
        """The task again, with a new taskUUID and the image inside `inputs` (the first was
        refused unrun); refused there too, the two reasons in one rejection."""
        try:
            return await self._run(request, image, refs, INPUTS)
        except _PlaceRefused as again:
            raise RemixRejected(
                f"The runware backend rejected the request (HTTP 400) with the source image "
                f"{PLACES[TOP]} ({first.reason}) and {PLACES[INPUTS]} ({again.reason}).",
                safety=first.safety or again.safety,
            ) from None

    def _settle(self, place: str) -> None:
        """Under `auto`, keep the place the server took for the rest of the process (one
        backend per process); the move to `inputs` is logged once."""
        if self.settings.runware_image_in != AUTO or self._settled is not None:
            return
        if place == INPUTS:
            log.info(
                "runware: the server refused the source image as top-level referenceImages and "
                "took it as inputs.referenceImages; sending it there from now on "
                "(REMIXBOT_RUNWARE_IMAGE_IN=auto)"
            )
        self._settled = place

    async def _run(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        image_in: str,
    ) -> RemixResult:
        """One task with its own taskUUID, the image placed per `image_in`."""
        task_id = str(uuid.uuid4())
        task = self.task(request, image, refs, task_id, image_in)
        body = await self.post(self.settings.remix_path, lambda: {"json": [task]})
        return RemixResult(
            images=self.parse(body, task_id, f"{task['width']}x{task['height']}", request),
            backend=self.name,
            backend_ref=task_id,
        )

    async def _interpret(self, status: int, body: bytes) -> Any:
        """As every backend, but a 400 naming where the image goes is told apart (it may be
        worth sending again with the image elsewhere: nothing ran)."""
        if status == 400 and names_image_place(body):
            error = map_status(self.name, status, body)
            assert isinstance(error, RemixRejected)
            raise _PlaceRefused(error, backend_reason(body, status))
        return await super()._interpret(status, body)

    def parse(self, body: Any, task_id: str, size: str, request: RemixRequest) -> list[ResultImage]:
        """Images of our task from `{data: [...], errors: [...]}`."""
        if not isinstance(body, dict):
            raise RemixOutcomeUnknown(
                "The runware backend's reply was not a JSON object; it may have run, so it was "
                "not resubmitted."
            )
        errors = [e for e in _as_list(body.get("errors")) if isinstance(e, dict)]
        items = [
            d
            for d in _as_list(body.get("data"))
            if isinstance(d, dict) and d.get("taskUUID", task_id) == task_id
        ]
        check_count(items, self.name)
        if not items:
            if errors:
                reason = backend_reason(json.dumps({"errors": errors}), 200)
                raise RemixRejected(
                    f"The runware backend rejected the request: {reason}.",
                    safety=mentions_safety(reason),
                )
            raise RemixOutcomeUnknown(
                "The runware backend's reply had no `data` for the task; it may have run, so it "
                "was not resubmitted."
            )
        images = []
        for item in items:
            url = item.get("imageURL")
            data = None
            inline = item.get("imageDataURI") or item.get("imageBase64Data")
            if isinstance(inline, str):
                try:
                    data = base64.b64decode(inline.split(",", 1)[-1], validate=True)
                except (binascii.Error, ValueError):
                    raise RemixOutcomeUnknown(
                        "The runware backend returned image data that is not valid base64; it "
                        "ran, so it was not resubmitted."
                    ) from None
            seed = item.get("seed")
            images.append(
                ResultImage(
                    url=url if isinstance(url, str) and url else None,
                    data=data,
                    seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                    resolution=size,
                    is_safe=item.get("NSFWContent") is not True,
                    prompt=request.prompt,
                )
            )
        return images


class _PlaceRefused(Exception):
    """An HTTP 400 from Runware naming `referenceImages` or `inputs`: refused unrun."""

    def __init__(self, error: RemixRejected, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.safety = error.safety


def _as_list(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty one (a malformed reply must not raise TypeError)."""
    return value if isinstance(value, list) else []

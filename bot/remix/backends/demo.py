"""The demo backend: honest local variations of the input made with Pillow — no key, no network.

It lets a new admin see the whole Discord flow (quota, progress, rerolls, controls) before paying
for an API key. Each result is a plain transformation of the input (a colour shift, a crop, a
filter), never a generated image, and says so: "demo backend" is drawn on every image and put in
its prompt, and the result embed says it too. The variations are seeded like a real backend's
(`seed`, then `seed + 1` for the second image…), so a reroll, which gets a new seed, differs.
"""

from __future__ import annotations

import asyncio
import io
import random
import secrets
from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from bot.media import EncodedImage
from bot.remix import enums
from bot.remix.backends.base import OnSubmitted, RemixResult, ResultImage
from bot.remix.backends.http import mask_refused
from bot.remix.request import RemixRequest
from bot.settings import Settings

NAME = "demo"
LABEL = "demo backend"
# Results are at most this long a side: enough to see the variation, cheap to make and post.
MAX_SIDE = 1024


def _colour(im: Image.Image, rng: random.Random) -> Image.Image:
    """Rotate the hues by a seeded amount."""
    h, s, v = im.convert("HSV").split()
    shift = rng.randrange(30, 226)
    h = h.point(lambda x: (x + shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def _crop(im: Image.Image, rng: random.Random) -> Image.Image:
    """Cut a seeded 60–90 % window and scale it back to the full size."""
    w, h = im.size
    scale = rng.uniform(0.6, 0.9)
    cw, ch = max(1, int(w * scale)), max(1, int(h * scale))
    left, top = rng.randrange(0, w - cw + 1), rng.randrange(0, h - ch + 1)
    return im.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.LANCZOS)


def _stylise(im: Image.Image, rng: random.Random) -> Image.Image:
    """One of a few classic filters, picked by the seed."""
    styles: list[Callable[[Image.Image], Image.Image]] = [
        lambda i: ImageOps.posterize(i, rng.randrange(2, 4)),
        lambda i: i.filter(ImageFilter.CONTOUR),
        lambda i: i.filter(ImageFilter.EMBOSS),
        lambda i: ImageOps.solarize(i, rng.randrange(96, 192)),
        lambda i: i.filter(ImageFilter.GaussianBlur(rng.uniform(2.0, 5.0))),
        lambda i: ImageOps.mirror(i),
    ]
    return rng.choice(styles)(im)


def _label(im: Image.Image) -> Image.Image:
    """Stamp "demo backend" in a dark band across the bottom-left corner."""
    draw = ImageDraw.Draw(im)
    font_size = max(12, im.width // 24)
    font = ImageFont.load_default(size=font_size)  # Pillow's bundled scalable font
    box = draw.textbbox((0, 0), LABEL, font=font)
    pad = max(4, font_size // 3)
    width, height = box[2] - box[0] + 2 * pad, box[3] - box[1] + 2 * pad
    draw.rectangle((0, im.height - height, width, im.height), fill=(0, 0, 0))
    draw.text((pad - box[0], im.height - height + pad - box[1]), LABEL, fill="white", font=font)
    return im


def variation(data: bytes, seed: int) -> tuple[bytes, str]:
    """One seeded variation of an encoded image as PNG bytes, and its resolution (blocking)."""
    rng = random.Random(seed)
    with Image.open(io.BytesIO(data)) as source:
        im = ImageOps.exif_transpose(source).convert("RGB")
    im.thumbnail((MAX_SIDE, MAX_SIDE))
    # Every variation shifts the colours; the crop and the filter come with seeded odds, so
    # neighbouring seeds look different at a glance.
    im = _colour(im, rng)
    if rng.random() < 0.7:
        im = _crop(im, rng)
    if rng.random() < 0.8:
        im = _stylise(im, rng)
    im = _label(im)
    out = io.BytesIO()
    im.save(out, format="PNG", optimize=False)
    return out.getvalue(), f"{im.width}x{im.height}"


class DemoBackend:
    """Local Pillow variations of the input, labelled "demo backend"; nothing is sent anywhere."""

    name = NAME
    resumable = False
    takes_mask = False

    def __init__(self, settings: Settings, session: object | None = None) -> None:
        self.settings = settings

    @classmethod
    def ratios_for(cls, settings: Settings) -> tuple[str, ...]:
        """Any of Ideogram's ratios: the demo keeps whatever shape intake prepared."""
        return enums.ASPECT_RATIOS

    @classmethod
    def models_for(cls, settings: Settings) -> tuple[str, ...]:
        """None: the demo has no model (REMIXBOT_MODEL is ignored)."""
        return ()

    @classmethod
    def where_for(cls, settings: Settings) -> str:
        """How messages name this backend."""
        return f"the {cls.name} backend"

    def check(self, request: RemixRequest, refs_count: int) -> None:
        """Refuse a mask (the demo does not edit regions); every other option is accepted."""
        if request.has_mask:
            raise mask_refused(self.name)

    async def remix(
        self,
        request: RemixRequest,
        image: EncodedImage,
        refs: Sequence[EncodedImage],
        *,
        mask: EncodedImage | None = None,
        on_submitted: OnSubmitted | None = None,
    ) -> RemixResult:
        """Make `num_images` seeded variations off the event loop; inline bytes, no URLs."""
        self.check(request, len(refs))
        if mask is not None:
            raise mask_refused(self.name)
        first = request.seed if request.seed is not None else secrets.randbelow(enums.MAX_SEED)
        seeds = [(first + i) % (enums.MAX_SEED + 1) for i in range(request.num_images)]
        made = await asyncio.gather(*(asyncio.to_thread(variation, image.data, s) for s in seeds))
        images = [
            ResultImage(
                url=None,
                data=data,
                seed=seed,
                resolution=resolution,
                prompt=f"{LABEL}: {request.prompt}",
            )
            for seed, (data, resolution) in zip(seeds, made, strict=True)
        ]
        return RemixResult(images=images, backend=self.name, backend_ref=None)

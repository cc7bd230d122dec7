"""`remixbot remix IMAGE --prompt TEXT --out DIR`: one remix from the terminal, images to disk."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bot.cli._common import cli_settings, print_json
from bot.errors import InvalidImage
from bot.media import EncodedImage, sniff_format
from bot.remix import enums
from bot.remix.backends import make_backend
from bot.remix.download import DownloadPolicy, make_download_session
from bot.remix.pipeline import Delivery, run_remix
from bot.remix.request import PaletteMember, RemixRequest
from bot.settings import Settings

INPUT_FORMATS = ("JPEG", "PNG", "WEBP")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `remix` to the command line."""
    p = sub.add_parser(
        "remix",
        help="remix one image from the terminal (checks the key and options)",
        description="Send IMAGE and a prompt to the configured backend; save the results in DIR.",
    )
    p.add_argument("image", metavar="IMAGE", help="input image (JPEG, PNG or WebP)")
    p.add_argument("--prompt", required=True, help="what the remix should show")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for images + sidecars")
    p.add_argument("--aspect-ratio", help=f"one of {' '.join(enums.ASPECT_RATIOS)}")
    p.add_argument("--resolution", help="WxH, e.g. 1024x1024 (instead of --aspect-ratio)")
    p.add_argument("--image-weight", help="1-100, how closely to follow the image (default 50)")
    p.add_argument("--seed", help=f"0-{enums.MAX_SEED}")
    p.add_argument("--rendering-speed", help=" ".join(enums.RENDERING_SPEEDS))
    p.add_argument("--magic-prompt", help=" ".join(enums.MAGIC_PROMPTS))
    p.add_argument("--negative-prompt", help="what to leave out")
    p.add_argument("--num-images", help=f"1-{enums.MAX_NUM_IMAGES} (default 1)")
    p.add_argument("--palette", metavar="NAME", help=" ".join(enums.PALETTE_PRESETS))
    p.add_argument(
        "--palette-color",
        metavar="HEX[:WEIGHT]",
        action="append",
        default=[],
        help="a palette colour, e.g. '#b470b3:0.5' (repeatable, up to 8)",
    )
    p.add_argument("--style-type", help="AUTO GENERAL REALISTIC DESIGN CUSTOM FICTION STYLIZED")
    p.add_argument("--style-preset", help="one of the 62 presets, e.g. WATERCOLOR")
    p.add_argument("--style-code", action="append", default=[], help="8 hex digits (repeatable)")
    p.add_argument(
        "--style-ref", metavar="FILE", action="append", default=[], help="style image (repeatable)"
    )
    p.add_argument("--model", help="legacy V_1 … V_3, or a Runware AIR id like ideogram:4@2")
    p.add_argument("--json", action="store_true", help="print the result summary as JSON")
    p.set_defaults(handler=_handle)


def build_request(args: argparse.Namespace) -> RemixRequest:
    """The RemixRequest for the command-line options (InvalidRequest names the bad one)."""
    kwargs: dict[str, Any] = {
        "prompt": args.prompt,
        "aspect_ratio": args.aspect_ratio,
        "resolution": args.resolution,
        "seed": args.seed,
        "rendering_speed": args.rendering_speed,
        "magic_prompt": args.magic_prompt,
        "negative_prompt": args.negative_prompt,
        "palette_name": args.palette,
        "palette_members": tuple(PaletteMember.parse(c) for c in args.palette_color),
        "style_type": args.style_type,
        "style_preset": args.style_preset,
        "style_codes": tuple(args.style_code),
        "model": args.model,
        "style_ref_count": len(args.style_ref),
    }
    if args.image_weight is not None:
        kwargs["image_weight"] = args.image_weight
    if args.num_images is not None:
        kwargs["num_images"] = args.num_images
    return RemixRequest(**kwargs)


def load_input(path: Path, settings: Settings, aspect_ratio: str | None) -> EncodedImage:
    """Read an input image: size cap, JPEG/PNG/WebP magic bytes, pixel size (blocking: run off-loop).

    The image-intake `prepare` step replaces this once it lands; `aspect_ratio` is for it.
    """
    from PIL import Image, UnidentifiedImageError  # Pillow only here, only to read the size

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidImage(f"The image file {str(path)!r} does not exist.") from None
    except OSError as exc:
        raise InvalidImage(
            f"The image file {str(path)!r} cannot be read ({exc.strerror})."
        ) from None
    if not path.is_file():
        raise InvalidImage(f"{str(path)!r} is not a file.")
    if size > settings.max_input_bytes:
        raise InvalidImage(
            f"The image {path.name} must be at most {settings.max_input_bytes:,} bytes, "
            f"not {size:,}."
        )
    data = path.read_bytes()
    fmt = sniff_format(data)
    if fmt not in INPUT_FORMATS:
        raise InvalidImage(
            f"The image {path.name} must be a JPEG, PNG or WebP file, not "
            f"{fmt or 'an unrecognised format'}."
        )
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidImage(f"The image {path.name} is damaged and cannot be read.") from None
    if width * height > settings.max_input_pixels:
        raise InvalidImage(
            f"The image {path.name} must have at most {settings.max_input_pixels:,} pixels, "
            f"not {width * height:,}."
        )
    return EncodedImage(data=data, format=fmt, width=width, height=height)


def _progress(message: str) -> None:
    print(f"remixbot: {message}", file=sys.stderr, flush=True)


def _write_sidecar(path: Path, record: dict[str, Any]) -> None:
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


async def _run(args: argparse.Namespace, settings: Settings, request: RemixRequest) -> int:
    image = await asyncio.to_thread(load_input, Path(args.image), settings, request.aspect_ratio)
    refs = [
        await asyncio.to_thread(load_input, Path(ref), settings, None) for ref in args.style_ref
    ]
    out = Path(args.out)
    policy = DownloadPolicy.from_settings(settings)
    stem = f"remix-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"

    async def submitted(task_id: str) -> None:
        _progress(f"task {task_id} submitted; waiting for it to finish")

    async with aiohttp.ClientSession() as api, make_download_session(policy) as downloads:
        backend = make_backend(settings, api)
        backend.check(request, len(refs))
        _progress(
            f"sending {image.format} {image.width}x{image.height} to the {backend.name} backend "
            f"({request.num_images} image(s))"
        )
        delivery = await run_remix(
            backend, downloads, policy, request, image, refs, out, on_submitted=submitted, stem=stem
        )
    for item in delivery.images:
        record = {
            "file": item.path.name,
            "seed": item.seed,
            "resolution": item.resolution,
            "prompt": item.prompt,
            "backend": delivery.backend,
            "backend_ref": delivery.backend_ref,
            "safe": True,
            "format": item.format,
            "request": request.to_dict(),
        }
        await asyncio.to_thread(_write_sidecar, item.path, record)
        if not args.json:
            print(item.path)
    return _report(args, delivery)


def _report(args: argparse.Namespace, delivery: Delivery) -> int:
    """Print the summary and choose the exit code."""
    if args.json:
        print_json(
            {
                "backend": delivery.backend,
                "backend_ref": delivery.backend_ref,
                "billed": delivery.billed,
                "withheld": delivery.withheld,
                "failed_downloads": delivery.failed_downloads,
                "errors": delivery.errors,
                "images": [
                    {
                        "path": str(i.path),
                        "seed": i.seed,
                        "resolution": i.resolution,
                        "prompt": i.prompt,
                        "format": i.format,
                    }
                    for i in delivery.images
                ],
            }
        )
    _progress(
        f"saved {len(delivery.images)} of {delivery.billed} image(s)"
        + (f"; {delivery.withheld} withheld by the safety check" if delivery.withheld else "")
    )
    for error in delivery.errors:
        _progress(error)
    if delivery.failed_downloads:
        return 1
    if not delivery.images:
        _progress("every image was withheld by the backend's safety check; nothing to save.")
        return 1
    return 0


def _handle(args: argparse.Namespace) -> int:
    settings = cli_settings()
    settings.require_api_key()
    request = build_request(args)
    return asyncio.run(_run(args, settings, request))

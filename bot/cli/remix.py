"""`remixbot remix IMAGE --prompt TEXT --out DIR`: one remix from the terminal, images to disk."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import json
import secrets
import shutil
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from bot.cli._common import cli_settings, print_json
from bot.cli._errors import ending_kind, error_object
from bot.cli.render import ending_sentence, error_sentence
from bot.cli.render import exit_code as ending_exit_code
from bot.errors import InvalidImage, InvalidRequest
from bot.intake import ACCEPTED, ImagePool, IntakeLimits, PreparedImage
from bot.intake.formats import heif_available
from bot.intake.mask import edit_mask_off_loop
from bot.jobs import Progress
from bot.lifecycle import Ending, JobLifecycle, JobTask, Outcome, Posted
from bot.media import EncodedImage
from bot.remix import enums
from bot.remix.backends import BACKEND_CLASSES, make_backend
from bot.remix.download import DownloadPolicy, free_name, make_download_session
from bot.remix.pipeline import Delivery
from bot.remix.request import PaletteMember, RemixRequest
from bot.settings import Settings
from bot.store import CLI_USER_ID, NewJob, Store
from bot.workflow import intake_limits, with_chosen_ratio

T = TypeVar("T")

# How the accepted formats read in --help (Pillow's names otherwise).
_FORMAT_NAMES = {"WEBP": "WebP"}


def accepted_formats() -> str:
    """The input formats intake accepts here, as a phrase: `JPEG, PNG, WebP or GIF` (HEIC
    too when pillow-heif is installed)."""
    formats = (*ACCEPTED, "HEIC") if heif_available() else ACCEPTED
    names = [_FORMAT_NAMES.get(f, f) for f in formats]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def register(sub: argparse._SubParsersAction) -> None:
    """Add `remix` to the command line."""
    p = sub.add_parser(
        "remix",
        help="remix one image from the terminal (checks the key and options)",
        description="Send IMAGE and a prompt to the configured backend; save the results in DIR.",
    )
    p.add_argument(
        "image",
        metavar="IMAGE",
        help=f"input image: {accepted_formats()}, recognised by content (animated: first frame)",
    )
    p.add_argument("--prompt", required=True, help="what the remix should show")
    p.add_argument(
        "--out", default="out", metavar="DIR", help="directory for images + sidecars (default out/)"
    )
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
    p.add_argument(
        "--style-preset",
        help=f"one of the {len(enums.STYLE_PRESETS)} presets, e.g. WATERCOLOR "
        "(`remixbot styles` lists them)",
    )
    p.add_argument("--style-code", action="append", default=[], help="8 hex digits (repeatable)")
    p.add_argument(
        "--style-ref",
        metavar="FILE",
        action="append",
        default=[],
        help=f"style reference image, same formats (repeatable, up to {enums.MAX_STYLE_REFS})",
    )
    p.add_argument(
        "--model",
        help="legacy V_1 … V_3 (the resellers' pages: V_1 … V_2_TURBO), or a Runware AIR id "
        "like ideogram:4@2",
    )
    p.add_argument(
        "--mask",
        metavar="FILE",
        help="ideogram-edit: black marks what to change, white what to keep (the image's shape)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the result (or the error) as JSON on stdout"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="prepare the input, run the backend's checks and print what would be sent; "
        "no backend call, no quota, no API key needed",
    )
    p.set_defaults(handler=_handle)


def check_style_preset(value: str | None) -> None:
    """Refuse an unknown preset with the nearest names and where to find the list."""
    if value is None or value.strip().upper() in enums.STYLE_PRESETS:
        return
    close = difflib.get_close_matches(value.strip().upper(), enums.STYLE_PRESETS, n=2)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise InvalidRequest(
        f"style_preset must be one of the {len(enums.STYLE_PRESETS)} presets, not {value!r}; "
        f"{hint}`remixbot styles` lists them."
    )


def build_request(args: argparse.Namespace) -> RemixRequest:
    """The RemixRequest for the command-line options (InvalidRequest names the bad one)."""
    check_style_preset(args.style_preset)
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
        "has_mask": args.mask is not None,
    }
    if args.image_weight is not None:
        kwargs["image_weight"] = args.image_weight
    if args.num_images is not None:
        kwargs["num_images"] = args.num_images
    return RemixRequest(**kwargs)


def read_input(path: Path, settings: Settings, what: str = "image", label: str = "") -> bytes:
    """Read an input file, refusing a missing file or one over the byte cap (blocking).

    The size refusal starts with `label` (default: the path as given), as every refusal of
    the image's content does (`_named`).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidImage(f"The {what} file {str(path)!r} does not exist.") from None
    except OSError as exc:
        raise InvalidImage(
            f"The {what} file {str(path)!r} cannot be read ({exc.strerror})."
        ) from None
    if not path.is_file():
        raise InvalidImage(f"{str(path)!r} is not a file.")
    limit = settings.max_input_bytes
    if size > limit:
        shown = f"{limit / 1e6:g} MB" if limit >= 1e6 else human_size(limit)
        raise InvalidImage(
            f"{label or path}: That file is {human_size(size)}; the limit is {shown}"
            " (REMIXBOT_MAX_INPUT_BYTES)."
        )
    return path.read_bytes()


def _progress(message: str) -> None:
    print(f"remixbot: {message}", file=sys.stderr, flush=True)


def _write_sidecar(path: Path, record: dict[str, Any]) -> None:
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


async def _run(args: argparse.Namespace, settings: Settings, request: RemixRequest) -> int:
    limits = intake_limits(settings)
    data = await asyncio.to_thread(read_input, Path(args.image), settings)
    ref_paths = [Path(r) for r in args.style_ref]
    ref_datas = [
        await asyncio.to_thread(read_input, path, settings, "image", f"--style-ref {path}")
        for path in ref_paths
    ]
    # One pool for the whole run: it prepares the input and decodes the results.
    async with ImagePool() as pool:
        prepared = await _named(
            str(args.image), pool.prepare(data, aspect_ratio=request.aspect_ratio, limits=limits)
        )
        refs = await _prepare_refs(pool, ref_paths, ref_datas, limits)
        mask = None
        if BACKEND_CLASSES[settings.backend].takes_mask:
            # The member's mask, else the input's transparent areas (a mask given to another
            # backend is refused by its check, before anything is sent).
            mask_data = (
                await asyncio.to_thread(
                    read_input, Path(args.mask), settings, "mask", f"--mask {args.mask}"
                )
                if args.mask
                else None
            )
            about = f"--mask {args.mask}" if args.mask else str(args.image)
            mask = await _named(about, edit_mask_off_loop(pool, prepared, mask_data, limits))
        if args.dry_run:
            return await _dry_run(args, settings, request, prepared, refs, mask)
        return await _generate(args, settings, request, pool, prepared, refs, mask)


async def _named(name: str, work: Awaitable[T]) -> T:
    """Run intake work; an image refusal names the file it is about."""
    try:
        return await work
    except InvalidImage as exc:
        raise InvalidImage(f"{name}: {error_sentence(exc)}") from None


async def _prepare_refs(
    pool: ImagePool, paths: list[Path], datas: list[bytes], limits: IntakeLimits
) -> list[PreparedImage]:
    """Prepare the style references; a refusal names the file that caused it."""
    if not datas:
        return []
    try:
        return await pool.prepare_style_refs(datas, limits)
    except InvalidImage:
        # Only on this error path: try each file alone to find the one to name. A refusal of
        # the set as a whole (too many, too large together) passes alone and is raised as is.
        for path, data in zip(paths, datas, strict=True):
            await _named(f"--style-ref {path}", pool.prepare_style_refs([data], limits))
        raise


async def _generate(
    args: argparse.Namespace,
    settings: Settings,
    request: RemixRequest,
    pool: ImagePool,
    prepared: PreparedImage,
    refs: list[PreparedImage],
    mask: EncodedImage | None = None,
) -> int:
    """Everything after intake: the job through the one lifecycle, saved to --out."""
    if settings.needs_api_key:
        settings.require_api_key()
    policy = DownloadPolicy.from_settings(settings)
    stem = f"remix-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    out = Path(args.out)
    presenter = TerminalPresenter(out, stem, json_output=args.json)
    work_dir = out / ".remixbot-work"
    out_existed = await asyncio.to_thread(out.exists)

    async with (
        aiohttp.ClientSession() as api,
        make_download_session(policy) as downloads,
        await Store.from_settings(settings) as store,
    ):
        backend = make_backend(settings, api)
        request = with_chosen_ratio(request, prepared)
        backend.check(request, len(refs))  # once per job, before anything is reserved
        lifecycle = JobLifecycle(
            store=store,
            backend=backend,
            download_session=downloads,
            policy=policy,
            verify=pool.check_result,
            work_dir=work_dir,
            undelivered_dir=settings.data_dir / "undelivered",
        )
        # The terminal user `cli` goes through the same books and the same exits as members.
        job = await lifecycle.reserve(
            NewJob(
                interaction_id=None,
                guild_id=None,
                channel_id=None,
                user_id=CLI_USER_ID,
                kind="remix",
                parent_job_id=None,
                request=request.to_dict(),
                input_key=None,
                style_ref_keys=(),
                backend=backend.name,
                images=request.num_images,
            )
        )
        image = prepared.image
        _progress(
            f"job {job.id}: sending {image.format} {image.width}x{image.height} to the "
            f"{backend.name} backend ({request.num_images} image(s))"
        )
        task = JobTask(request, image, [r.image for r in refs], mask=mask)
        try:
            await lifecycle.run(job, task, presenter, stage=presenter.stage)
        finally:
            await lifecycle.close()
            await asyncio.to_thread(_tidy, work_dir, None if out_existed else out)
    return presenter.exit_code()


def _tidy(work_dir: Path, made: Path | None) -> None:
    """Remove the work folder once the lifecycle emptied it, and the output folder this run
    made if nothing was saved in it; a folder with anything left in it stays."""
    for folder in (work_dir, made):
        if folder is not None:
            with contextlib.suppress(OSError):  # not empty, or already gone
                folder.rmdir()


class TerminalPresenter:
    """`remixbot remix`'s presenter: results are saved to a folder with a sidecar each."""

    def __init__(self, out: Path, stem: str, *, json_output: bool) -> None:
        self.out = out
        self.stem = stem
        self.json_output = json_output
        self.ending: Ending | None = None
        self.outcome: Outcome | None = None
        self.saved: list[Path] = []
        self.save_error: str | None = None

    def stage(self, stage: str) -> None:
        """Say on stderr what the job is doing."""
        if stage == "generating":
            _progress("waiting for the backend")
        elif stage.startswith("submitted:"):
            _progress(f"task {stage.partition(':')[2]} submitted; waiting for it to finish")

    async def progress(self, progress: Progress) -> None:
        """No queue in the terminal: nothing to show."""

    async def deliver(self, outcome: Outcome) -> Posted:
        """Move the images to --out with a .json sidecar each; print their paths."""
        self.outcome = outcome
        self.saved = await asyncio.to_thread(self._save, outcome)
        if not self.json_output:
            for path in self.saved:
                print(path)
        return Posted((), None, len(self.saved))

    def _save(self, outcome: Outcome) -> list[Path]:
        """Move the images into --out in order; a failure stops there, so the saved ones are
        charged and the rest are kept for the admin (never all refunded, some already saved)."""
        saved: list[Path] = []
        images = outcome.delivery.images
        for n, item in enumerate(images, 1):
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                target = free_name(self.out, f"{self.stem}-{n}", item.path.suffix.lstrip("."))
                # Copied, not moved: the work folder stays whole for the lifecycle (it keeps the
                # saved images with the job and the unsaved ones for the admin).
                _copy(item.path, target)
            except OSError as exc:
                self.save_error = (
                    f"could not save image {n} of {len(images)} into {self.out}"
                    f" ({exc.strerror or type(exc).__name__}); the unsaved ones are kept in"
                    f" undelivered/job-{outcome.job.id} in the data folder, not charged"
                )
                break
            saved.append(target)
            record = {
                "file": target.name,
                "seed": item.seed,
                "resolution": item.resolution,
                "prompt": item.prompt,
                "backend": outcome.delivery.backend,
                "backend_ref": outcome.delivery.backend_ref,
                "safe": True,
                "format": item.format,
                "request": outcome.request.to_dict(),
                "job": outcome.job.id,
            }
            try:
                _write_sidecar(target, record)
            except OSError as exc:  # the image itself is saved (and charged)
                self.save_error = f"could not write {target.name}'s sidecar ({exc.strerror})"
                break
        return saved

    async def end(self, ending: Ending) -> None:
        """Remember how the job ended; the summary prints it."""
        self.ending = ending

    def exit_code(self) -> int:
        """Print the summary and choose the exit code."""
        delivery = (
            self.outcome.delivery
            if self.outcome is not None
            else (self.ending.delivery if self.ending is not None else None)
        )
        if self.ending is None and delivery is None:
            return 1
        if self.json_output:
            print_json(_summary(delivery, self.saved, self.ending, self.save_error))
        if delivery is not None:
            _progress(
                f"saved {len(self.saved)} of {delivery.billed} image(s)"
                + (
                    f"; {delivery.withheld} withheld by the safety check"
                    if delivery.withheld
                    else ""
                )
            )
            for error in delivery.errors:
                _progress(error)
        if self.save_error is not None:
            _progress(self.save_error)
        if self.ending is not None:
            _progress(ending_sentence(self.ending))
            return ending_exit_code(self.ending)
        failed = delivery is not None and delivery.failed_downloads
        return 1 if failed or self.save_error is not None else 0


def _copy(source: Path, target: Path) -> None:
    """Copy a file; a copy that fails part-way leaves nothing behind."""
    try:
        shutil.copyfile(source, target)
    except OSError:
        target.unlink(missing_ok=True)
        raise


def _summary(
    delivery: Delivery | None, saved: list[Path], ending: Ending | None, save_error: str | None
) -> dict[str, Any]:
    """The --json summary of a run."""
    out: dict[str, Any] = {"images": []}
    if save_error is not None:
        out["save_error"] = save_error
    if delivery is not None:
        out |= {
            "backend": delivery.backend,
            "backend_ref": delivery.backend_ref,
            "billed": delivery.billed,
            "withheld": delivery.withheld,
            "failed_downloads": delivery.failed_downloads,
            "errors": delivery.errors,
            "images": [
                {
                    "path": str(path),
                    "seed": i.seed,
                    "resolution": i.resolution,
                    "prompt": i.prompt,
                    "format": i.format,
                }
                for path, i in zip(saved, delivery.images, strict=False)
            ],
        }
    if ending is not None:
        out |= error_object(ending_sentence(ending), ending_kind(ending), ending_exit_code(ending))
        out["exit"] = str(ending.exit)
    return out


async def _dry_run(
    args: argparse.Namespace,
    settings: Settings,
    request: RemixRequest,
    prepared: PreparedImage,
    refs: list[PreparedImage],
    mask: EncodedImage | None,
) -> int:
    """Run the backend's own checks and show what it would send; no call, no books, no key."""
    from bot.cli._wire import capture  # aiohttp.web only for a dry run

    async with aiohttp.ClientSession(trust_env=False) as unused:  # check() never sends
        backend = make_backend(settings, unused)
        request = with_chosen_ratio(request, prepared)
        backend.check(request, len(refs))  # as the real run does, before anything else
    # A local backend (demo) makes its images here: there is no request to capture.
    local = not settings.needs_api_key
    wire = (
        None
        if local
        else await capture(settings, request, prepared.image, [r.image for r in refs], mask)
    )
    if settings.needs_api_key and not settings.api_key:
        _progress("note: REMIXBOT_API_KEY is not set; the real run needs it.")
    note = (
        f"The {backend.name} backend makes its images on this machine, so nothing would be sent"
        " anywhere."
    )
    if args.json:
        print_json(
            {
                "dry_run": True,
                "backend": backend.name,
                "request": None if wire is None else wire.to_dict(),
                "image": _image_summary(prepared),
                "style_refs": [_image_summary(r) for r in refs],
            }
            | ({"note": note} if wire is None else {})
        )
        return 0
    print("Dry run: nothing was sent and no quota was used.")
    if wire is None:
        print(f"backend: {backend.name} (local)")
    else:
        print(f"backend: {backend.name}, {wire.method} {wire.url} ({wire.content_type})")
    print(f"image:   {_describe(prepared)}")
    for n, ref in enumerate(refs, 1):
        print(f"style {n}: {_describe(ref)}")
    if wire is None:
        print(note)
        return 0
    print("would send:")
    lines = wire.lines()
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"  {name.ljust(width)}  {value}")
    return 0


def _image_summary(p: PreparedImage) -> dict[str, Any]:
    # The aspect ratio sent is in the request; intake's pick is not repeated beside it.
    return {k: v for k, v in p.summary().items() if k != "aspect_ratio"}


def _describe(p: PreparedImage) -> str:
    """`JPEG 4000x3000, 3.0 MB -> JPEG 2000x1500, 850 KB (downscaled from 4000x3000)`."""
    sw, sh = p.source_size
    image = p.image
    text = (
        f"{p.source_format} {sw}x{sh}, {human_size(p.source_bytes)} -> "
        f"{image.format} {image.width}x{image.height}, {human_size(len(image.data))}"
    )
    return text + (f" ({', '.join(p.changes)})" if p.changes else "")


def human_size(n: int) -> str:
    """Bytes as people read them: `512 bytes`, `850 KB`, `3.0 MB` (decimal, as limits are stated)."""
    if n < 1000:
        return f"{n} bytes"
    return f"{n / 1e3:.0f} KB" if n < 1e6 else f"{n / 1e6:.1f} MB"


def _handle(args: argparse.Namespace) -> int:
    # A dry run needs no key; a real one reports a missing key with any other settings problem.
    settings = cli_settings(require=() if args.dry_run else ("api_key",))
    request = build_request(args)
    return asyncio.run(_run(args, settings, request))

"""Benchmark: the intake pipeline against the naive one, on a 12 MP camera JPEG and an 8 MB PNG.

Run by hand: `python bench/intake.py [--runs 7]`. Prints medians (ms), output sizes and the
naive/ours ratio. Three pipelines, interleaved in the same run:
- naive: open -> convert("RGB") -> exif_transpose -> thumbnail((side, side)) -> JPEG q90
- intake: bot.intake.prepare with the defaults (JPEG draft slack 0.95)
- intake exact: the same with draft_slack=1.0 (long side exactly `side`)
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import PIL
from PIL import Image, ImageOps, features

from bot.intake import IntakeLimits, prepare
from tests import imagecorpus


def camera_jpeg() -> bytes:
    """4000x3000 photo-like JPEG q95 with camera EXIF (make, model, orientation 6: portrait)."""
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"
    exif[0x0110] = "BC-12"
    exif[0x0112] = 6
    buf = io.BytesIO()
    imagecorpus.photo(4000, 3000, seed=11).save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def big_png() -> bytes:
    """A photo-like PNG of about 8 MB (3200x2100 with grain, default compression)."""
    buf = io.BytesIO()
    imagecorpus.photo(3200, 2100, seed=12).save(buf, "PNG")
    return buf.getvalue()


def naive(data: bytes, side: int) -> tuple[int, int, int]:
    im = Image.open(io.BytesIO(data))
    im = im.convert("RGB")
    im = ImageOps.exif_transpose(im)
    im.thumbnail((side, side))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return im.width, im.height, len(buf.getvalue())


def ours(data: bytes, side: int, slack: float) -> tuple[int, int, int]:
    p = prepare(data, aspect_ratio=None, limits=IntakeLimits(max_side=side, draft_slack=slack))
    return p.image.width, p.image.height, len(p.image.data)


def measure(fns: dict[str, Callable[[], tuple[int, int, int]]], runs: int) -> dict[str, tuple]:
    """Median wall time and median CPU time (this thread) per pipeline, interleaved runs."""
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    shapes: dict[str, tuple[int, int, int]] = {}
    for name, fn in fns.items():  # warm-up (imports, caches)
        shapes[name] = fn()
    for _ in range(runs):
        for name, fn in fns.items():  # interleaved, so drift hits all pipelines alike
            start, start_cpu = time.perf_counter(), time.thread_time()
            fn()
            wall[name].append((time.perf_counter() - start) * 1000)
            cpu[name].append((time.thread_time() - start_cpu) * 1000)
    return {
        name: (statistics.median(wall[name]), statistics.median(cpu[name]), shapes[name])
        for name in fns
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(
        f"Python {platform.python_version()}, Pillow {PIL.__version__} "
        f"(libjpeg-turbo {features.version('libjpeg_turbo')}, zlib {features.version('zlib')}), "
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
        f"median of {args.runs}"
    )
    inputs = {"12 MP JPEG": camera_jpeg(), "8 MB PNG": big_png()}
    for label, data in inputs.items():
        with Image.open(io.BytesIO(data)) as im:
            print(f"input {label}: {im.format} {im.width}x{im.height}, {len(data) / 1e6:.1f} MB")
    print()
    print(
        f"{'case':<22}{'pipeline':<14}{'wall ms':>9}{'cpu ms':>9}  {'output':<22}"
        f"{'naive/this wall':>16}{'cpu':>7}"
    )
    for label, data in inputs.items():
        for side in (2048, 1024):
            fns = {
                "naive": lambda d=data, s=side: naive(d, s),
                "intake": lambda d=data, s=side: ours(d, s, 0.95),
                "intake exact": lambda d=data, s=side: ours(d, s, 1.0),
            }
            results = measure(fns, args.runs)
            base_wall, base_cpu, _ = results["naive"]
            for name, (ms, cpu_ms, (w, h, n)) in results.items():
                case = f"{label} -> {side}"
                out = f"{w}x{h} {n / 1e6:.2f} MB"
                print(
                    f"{case:<22}{name:<14}{ms:>9.1f}{cpu_ms:>9.1f}  {out:<22}"
                    f"{base_wall / ms:>15.2f}x{base_cpu / cpu_ms:>6.2f}x"
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

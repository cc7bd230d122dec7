"""Decompression bombs are refused from the header: no large allocation, Python- or C-side."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from bot.errors import InvalidImage
from bot.intake import IntakeLimits, prepare
from tests import imagecorpus as corpus

ROOT = Path(__file__).resolve().parents[1]


def test_png_bomb_python_heap_stays_small() -> None:
    data = corpus.png_bomb()
    assert len(data) < 100_000  # ~50 KB on disk, 400 MP declared
    tracemalloc.start()
    try:
        with pytest.raises(InvalidImage, match=r"400\.0 megapixels"):
            prepare(data, aspect_ratio=None, limits=IntakeLimits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The input is already in memory; prepare() adds at most a BytesIO view and a header parse.
    assert peak < 1_000_000, peak


_CHILD = textwrap.dedent(
    """
    import resource, sys
    from bot.errors import InvalidImage
    from bot.intake import IntakeLimits, prepare
    from tests import imagecorpus
    data = imagecorpus.png_bomb()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.argv[1] == "prepare":
        try:
            prepare(data, aspect_ratio=None, limits=IntakeLimits())
        except InvalidImage:
            pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(peak - base)
    """
)


def test_png_bomb_peak_rss_flat() -> None:
    # Pillow allocates pixel memory with malloc, which tracemalloc does not see: measure the peak
    # resident size of a fresh process instead (KiB on Linux). Decoding the bomb as 1-bit would
    # take 50 MB, as L 400 MB.
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, "prepare"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    grew_kib = int(out.stdout.strip())
    assert grew_kib < 10 * 1024, f"peak RSS grew by {grew_kib} KiB"

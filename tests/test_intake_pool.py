"""ImagePool: Pillow work runs in its threads, so the event loop keeps ticking."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.errors import InvalidImage
from bot.intake import ImagePool, IntakeLimits, UploadFile, prepare
from tests import imagecorpus as corpus

EXACT = IntakeLimits(draft_slack=1.0)  # full-size decode + resample: the heaviest path


async def _ticker(stop: asyncio.Event, gaps: list[float]) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def test_loop_keeps_ticking_during_heavy_prepare() -> None:
    data = corpus.smooth_jpeg(4000, 3000)
    # What one prepare costs on this machine right now: run inline, it would stall the loop
    # at least this long.
    start = time.perf_counter()
    prepare(data, aspect_ratio=None, limits=EXACT)
    inline = time.perf_counter() - start
    stop, gaps = asyncio.Event(), []
    async with ImagePool(timeout=30) as pool:
        ticker = asyncio.create_task(_ticker(stop, gaps))
        start = time.perf_counter()
        results = await asyncio.gather(
            pool.prepare(data, aspect_ratio=None, limits=EXACT),
            pool.prepare(data, aspect_ratio="1x1", limits=EXACT),
        )
        elapsed = time.perf_counter() - start
        stop.set()
        await asyncio.wait_for(ticker, 5)
    assert [(r.image.width, r.image.height) for r in results] == [(2048, 1536), (2048, 2048)]
    # The loop ran all along: many ticks, none stalled for anything like one prepare.
    assert len(gaps) >= elapsed / 0.05
    assert max(gaps) < inline / 3, (max(gaps), inline)


async def test_refusal_comes_back_as_invalid_image() -> None:
    async with ImagePool() as pool:
        with pytest.raises(InvalidImage, match="not an image"):
            await pool.prepare(corpus.text_named_png(), aspect_ratio=None, limits=EXACT)
        refs = await pool.prepare_style_refs([corpus.jpeg(300, 200)], EXACT)
        assert refs[0].image.width == 300


async def test_timeout_gives_one_sentence() -> None:
    data = corpus.smooth_jpeg(4000, 3000)
    async with ImagePool(timeout=0.001) as pool:
        with pytest.raises(InvalidImage) as info:
            await pool.prepare(data, aspect_ratio=None, limits=EXACT)
    assert str(info.value) == (
        "That image took more than 0.001 seconds to prepare; send a smaller JPEG, PNG or WebP."
    )


async def test_fit_for_upload_through_pool_and_closed_pool_refuses() -> None:
    files = [UploadFile(f"f{i}.jpg", corpus.jpeg(64, 48)) for i in range(12)]
    pool = ImagePool()
    messages = await pool.fit_for_upload(files, per_file_limit=10 * 1024 * 1024)
    assert [len(m) for m in messages] == [6, 6]
    await pool.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await pool.prepare(corpus.jpeg(), aspect_ratio=None, limits=EXACT)


async def test_run_executes_any_call_in_a_pool_thread() -> None:
    import threading

    async with ImagePool() as pool:
        name = await pool.run(lambda: threading.current_thread().name)
    assert name.startswith("pillow") and name != threading.current_thread().name


async def test_concurrent_prepares_leave_warning_filters_alone() -> None:
    import warnings

    before = list(warnings.filters)
    inputs = [
        corpus.jpeg_declaring(10000, 10000),  # bomb-warning territory (100 MP)
        corpus.jpeg(320, 240),
        corpus.png_bomb(),
        corpus.animated_webp(),
    ] * 5
    limits = IntakeLimits(max_pixels=150_000_000, max_input_side=20000)
    async with ImagePool(timeout=30) as pool:
        results = await asyncio.gather(
            *(pool.prepare(d, aspect_ratio=None, limits=limits) for d in inputs),
            return_exceptions=True,
        )
    refused = [r for r in results if isinstance(r, InvalidImage)]
    assert len(refused) == 10 and all("megapixels" in str(r) for r in refused)
    assert all(not isinstance(r, BaseException) or isinstance(r, InvalidImage) for r in results)
    assert warnings.filters == before

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
    # The loop ran all along: most of the time passed in short ticks. Run on the loop, the two
    # prepares would be one or two stalls of a whole prepare each and hardly a tick. (A busy
    # machine may hold up one tick now and then, which is not what this checks.)
    ticking = sum(gap for gap in gaps if gap < min(0.05, inline / 3))
    assert len(gaps) >= 10 and ticking >= elapsed / 2, (len(gaps), ticking, elapsed, max(gaps))


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


# --- lanes and time limits (issue 10, defect 5) -------------------------------------------------


def _result_file(tmp_path) -> object:
    path = tmp_path / "result.png"
    path.write_bytes(corpus.png(1024, 1024))
    return path


async def test_results_never_wait_behind_blocked_intake(tmp_path) -> None:
    # Both intake workers are held for 1.5 s each, twice over; the limit is 1 s. A result queued
    # behind them (one pool for everything) would wait 3 s and time out; its own lane starts it
    # at once.
    path = _result_file(tmp_path)
    big = UploadFile("result.png", corpus.noise_png(600, 600))  # over the limit: re-encoded
    async with ImagePool(timeout=1.0) as pool:
        burst = [asyncio.ensure_future(pool.run(time.sleep, 1.5)) for _ in range(4)]
        await asyncio.sleep(0.05)  # the burst is on the workers and in the queue
        start = time.perf_counter()
        await pool.check_result(path)
        messages = await pool.fit_for_upload([big], per_file_limit=300_000)
        elapsed = time.perf_counter() - start
        assert not any(t.done() for t in burst)  # intake still busy all along
        results = await asyncio.gather(*burst, return_exceptions=True)
    assert elapsed < 1.0, elapsed
    assert len(messages[0][0].data) <= 300_000
    # Each burst call ran 1.5 s against a 1 s limit counted from its own start: timed out.
    assert all(isinstance(r, TimeoutError) for r in results)


async def test_results_go_ahead_of_a_burst_of_large_uploads(tmp_path) -> None:
    path = _result_file(tmp_path)
    data = corpus.smooth_jpeg(4000, 3000)
    finished: list[str] = []

    async def upload() -> None:
        await pool.prepare(data, aspect_ratio=None, limits=EXACT)
        finished.append("upload")

    async with ImagePool(timeout=30) as pool:
        burst = [asyncio.ensure_future(upload()) for _ in range(6)]
        await asyncio.sleep(0)  # every upload is queued before the result arrives
        await pool.check_result(path)
        uploads_before_result = len(finished)
        await asyncio.wait_for(asyncio.gather(*burst), 60)
    # One shared queue would run the result after five of the six uploads.
    assert uploads_before_result < 3, uploads_before_result


async def test_time_limit_counts_from_the_start_not_from_the_queue() -> None:
    # One worker, limit 1 s: the third call waits 1.2 s in the queue, then runs 0.6 s.
    async with ImagePool(workers=1, timeout=1.0) as pool:
        start = time.perf_counter()
        await asyncio.gather(*(pool.run(time.sleep, 0.6) for _ in range(3)))
        assert time.perf_counter() - start >= 1.75
        # An upload queued behind 1.4 s of other work, and quick itself, is prepared.
        ahead = [asyncio.ensure_future(pool.run(time.sleep, 0.7)) for _ in range(2)]
        jpeg = corpus.jpeg(320, 240)
        queued = asyncio.ensure_future(pool.prepare(jpeg, aspect_ratio=None, limits=EXACT))
        await asyncio.gather(*ahead)
        prepared = await queued
    assert (prepared.image.width, prepared.image.height) == (320, 240)


async def test_a_call_running_past_the_limit_still_times_out() -> None:
    async with ImagePool(timeout=0.2) as pool:
        start = time.perf_counter()
        with pytest.raises(TimeoutError):
            await pool.run(time.sleep, 1.0)
        assert time.perf_counter() - start < 0.9


async def test_intake_waiting_too_long_for_a_worker_is_told_the_bot_is_busy() -> None:
    ran: list[int] = []
    async with ImagePool(workers=1, timeout=5, queue_limit=0.2) as pool:
        blocker = asyncio.ensure_future(pool.run(time.sleep, 0.6))
        await asyncio.sleep(0.05)
        with pytest.raises(InvalidImage) as info:
            await pool.prepare(corpus.jpeg(320, 240), aspect_ratio=None, limits=EXACT)
        with pytest.raises(TimeoutError):
            await pool.run(ran.append, 1)
        await blocker
        await pool.run(ran.append, 2)
    assert str(info.value) == (
        "The bot is busy preparing other images; try again in a minute (you were not charged)."
    )
    assert ran == [2]  # a call given up while queued never runs


async def test_results_wait_for_their_lane_without_a_queue_limit(tmp_path) -> None:
    path = _result_file(tmp_path)
    heavy = UploadFile("result.png", corpus.noise_png(1200, 1200))  # several encodes to fit
    async with ImagePool(result_workers=1, timeout=30, queue_limit=0.01) as pool:
        fitting = asyncio.ensure_future(pool.fit_for_upload([heavy], per_file_limit=200_000))
        await asyncio.sleep(0)
        start = time.perf_counter()
        await pool.check_result(path)  # queued behind the re-encode: waits, is not refused
        waited = time.perf_counter() - start
        await fitting
    assert waited > 0.01

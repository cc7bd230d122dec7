"""The bot at the backend's limit, measured through Discord: `python bench/load.py [case …]`.

The real bot (`remixbot run` as a process) runs against the project's fake Discord and fake
remix server on 127.0.0.1. The fake remix server answers after a set latency L and enforces an
in-flight limit of C images with Ideogram's 429. Cases (issue "At the backend's limit"):

  a  200 /remix from 100 members at once, 1 image each, L=2 s, C=10
  b  the same with C=10 configured but the server allowing only 6
  c  one member at their cap beside 50 members with one job each (and the same without them)
  d  1,000 jobs queued with L=5 s: peak RSS and the loop's longest stall
  e  one job at a time, a 12 MP camera JPEG in, four 1152x864 PNGs out, L=1 s: the bot's own
     time per job (time to result minus L), median of 10 (e-small: the same with a small input)
  a-pg  case a, one process, the books in PostgreSQL (a throwaway server, durable defaults)
  a2    case a served by two processes (shards 0 and 1 of 2) on that PostgreSQL, the members
        in two guilds, one on each shard; C=10 over both (the in-flight budget is shared)

Acknowledgement figures are printed beside those of a discord.py bot that only defers (the
floor), run the same way on the same fake. Figures are from one run; record them with the
machine in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.databases import throwaway_postgres  # noqa: E402
from tests.fakediscord import FakeDiscord  # noqa: E402
from tests.fakediscord import payloads as p  # noqa: E402
from tests.fakediscord.helpers import BotProcess  # noqa: E402
from tests.fakeremix import FakeRemix, running_fake  # noqa: E402
from tests.fakeremix.helpers import fake_env  # noqa: E402


@dataclass
class Case:
    """One load: how many jobs from how many members against which backend."""

    name: str
    jobs: int
    members: int
    latency: float
    configured: int = 10
    allowed: int = 10
    images: int = 1
    heavy: int = 0  # jobs of one extra member at their cap (case c), sent first
    heavy_images: int = 4
    input_size: tuple[int, int] = (64, 48)
    sequential: bool = False  # one job at a time (case e)
    waves: int = 0  # send in waves of this many every 0.5 s (case d), not all at once
    result_size: tuple[int, int] | None = None
    wait_results: bool = True
    env: dict[str, str] = field(default_factory=dict)
    processes: int = 1  # >1: one process per shard, the books in PostgreSQL
    postgres: bool = False


@dataclass
class Report:
    """What one case measured."""

    acks: list[float]
    results: list[float]
    light_results: list[float]
    refusals: int
    refusal_texts: list[str]
    delivered_images: int
    rss_mb: float
    stall_ms: float | None
    throughput: float | None
    elapsed: float


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def input_image(size: tuple[int, int]) -> bytes:
    """An input of `size`: a tiny PNG, or a camera-like JPEG (gradients and fine grain at quality
    90; a 4000x3000 one is about 4.8 MB, as a 12 MP phone photo is)."""
    if size == (64, 48):
        buf = io.BytesIO()
        Image.new("RGB", size, (200, 40, 90)).save(buf, format="PNG")
        return buf.getvalue()
    gradient = Image.linear_gradient("L").resize(size)
    grain = Image.effect_noise(size, 18)
    im = Image.merge("RGB", (gradient, grain, gradient.rotate(90).resize(size)))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def callback_at(d: FakeDiscord, inter: Any) -> float | None:
    """When the bot's first answer to an interaction arrived at the fake."""
    for call in d.calls:
        if call.method == "POST" and f"/interactions/{inter.id}/" in call.path:
            return call.at
    return None


def result_at(d: FakeDiscord, inter: Any) -> tuple[float | None, int]:
    """When the interaction's result (files on the original response) arrived, and its files."""
    for call in d.calls:
        if (
            call.method == "PATCH"
            and inter.token in call.path
            and call.path.endswith("/messages/@original")
            and call.files
        ):
            return call.at, len(call.files)
    return None, 0


def refused(d: FakeDiscord, inter: Any) -> bool:
    """True when the bot refused the request (privately, or on its response)."""
    msg = d.original(inter)
    if msg is not None and "⚠️" in (msg.content or ""):
        return True
    for call in d.calls:
        if call.method == "POST" and f"/interactions/{inter.id}/" in call.path:
            body = call.json if isinstance(call.json, dict) else {}
            data = body.get("data") if isinstance(body.get("data"), dict) else {}
            return bool((data.get("flags") or 0) & 64)
    return False


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


@contextlib.asynccontextmanager
async def fakes(case: Case) -> AsyncIterator[tuple[FakeDiscord, FakeRemix]]:
    """Both fakes, set for the case."""
    async with FakeDiscord() as d, running_fake() as r:
        r.api_delay = case.latency
        r.inflight_limit = case.allowed
        if case.result_size:
            r.result_size = list(case.result_size)
            r.result_format = "PNG"
            from tests.fakeremix.images import photo_like

            for variant in range(8):  # made once, before the clock runs
                photo_like("PNG", case.result_size, variant)
        yield d, r


def members(n: int) -> list[dict[str, Any]]:
    """n distinct members."""
    return [p.user(p.snowflake(), f"member{i}") for i in range(n)]


async def fire(
    d: FakeDiscord,
    users: list[dict[str, Any]],
    jobs: int,
    image: bytes,
    images: int,
    channels: list[str] | None = None,
) -> list[Any]:
    """`jobs` /remix at once, spread over `users` (and `channels`) in turn."""
    attachment = d.upload_attachment("photo.jpg", image)
    options = {"image": attachment, "prompt": "the same scene as a poster"}
    if images != 1:
        options["num_images"] = images
    where = channels or [d.channel_id]
    return list(
        await asyncio.gather(
            *(
                d.slash(
                    "remix", options, user=users[i % len(users)], channel_id=where[i % len(where)]
                )
                for i in range(jobs)
            )
        )
    )


async def wait_all(d: FakeDiscord, inters: list[Any], within: float) -> None:
    """Until every interaction has a result or a refusal (bounded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(result_at(d, i)[0] or refused(d, i) for i in inters):
            return
        await asyncio.sleep(0.25)
    print(f"  (stopped waiting after {within:.0f} s)")


async def run_bot_case(case: Case, data: Path) -> Report:
    """The real bot under one case (in one process, or one per shard on PostgreSQL)."""
    several = case.postgres or case.processes > 1
    server = throwaway_postgres(durable=True) if several else contextlib.nullcontext(None)
    with server as url:
        return await _run_bot_case(case, data, url)


async def _run_bot_case(case: Case, data: Path, url: str | None) -> Report:
    async with fakes(case) as (d, r):
        env = fake_env(
            r,
            REMIXBOT_INFLIGHT_IMAGES=str(case.configured),
            REMIXBOT_BACKEND_TIMEOUT="60",
            REMIXBOT_LOG_LEVEL="INFO",
            REMIXBOT_DEFAULT_LIMIT="1000000",  # the quota is not what is measured
            **({"REMIXBOT_DATABASE_URL": url} if url else {}),
            **case.env,
        )
        channels, shards = None, [{}]
        if case.processes > 1:  # a guild on each shard, a process for each shard
            count = case.processes
            channels = [d.add_guild(shard=n, shard_count=count)[1] for n in range(count)]
            shards = [
                {"REMIXBOT_SHARD_COUNT": str(count), "REMIXBOT_SHARDS": str(n)}
                for n in range(count)
            ]
        bots = [BotProcess(d, data, launcher=False, env={**env, **extra}) for extra in shards]
        async with contextlib.AsyncExitStack() as running:
            for each in bots:
                await running.enter_async_context(each)
                await each.start_and_wait_ready(within=60)
            await d.wait_until(lambda: d.commands, 30, "the command sync")
            image = input_image(case.input_size)
            users = members(case.members)
            inters: list[Any] = []
            heavy: list[Any] = []
            started = time.time()
            if case.heavy:
                heavy = await fire(d, members(1), case.heavy, image, case.heavy_images)
            if case.sequential:
                for _ in range(case.jobs):
                    inters += await fire(d, users, 1, image, case.images)
                    await wait_all(d, inters[-1:], 60)
            elif case.waves:
                for start in range(0, case.jobs, case.waves):
                    wave = users[start : start + case.waves]
                    inters += await fire(d, wave, len(wave), image, case.images)
                    await asyncio.sleep(0.5)
            else:
                inters = await fire(d, users, case.jobs, image, case.images, channels)
            if case.wait_results:
                per_batch = case.latency * max(case.images, 1) / max(case.allowed, 1)
                await wait_all(d, inters + heavy, 120 + case.jobs * per_batch * 2)
            else:  # every job accepted (its response shows the queue) before measuring
                await d.wait_until(
                    lambda: all((m := d.original(i)) is not None and not m.loading for i in inters),
                    180,
                    "every job in the queue",
                )
                await asyncio.sleep(5)
            rss = max(peak_rss_mb(each.proc.pid) for each in bots)  # type: ignore[union-attr]
            # Refusals while serving (a stop's "restarting" replies are not refusals).
            refusals = sum(refused(d, i) for i in inters + heavy)
            texts = sorted(
                {
                    (d.original(i).content if d.original(i) else "(private answer)")
                    for i in inters + heavy
                    if refused(d, i)
                }
            )
            for each in bots:
                await each.stop(signal.SIGTERM, within=60)
        log = "\n".join(each.output() for each in bots)
        stalls = [float(m) for m in re.findall(r"longest stall: (\d+) ms", log)]
        acks = [a - i.created for i in inters if (a := callback_at(d, i))]
        results, light, delivered, ends = [], [], 0, []
        for i in inters:
            at, files = result_at(d, i)
            if at is not None:
                results.append(at - i.created)
                light.append(at - i.created)
                delivered += files
                ends.append(at)
        for i in heavy:
            at, files = result_at(d, i)
            if at is not None:
                delivered += files
                ends.append(at)
        throughput = None
        if ends and not case.sequential:
            settle = 10.0 if case.allowed < case.configured else 0.0
            window_start = started + settle
            late = [
                e for e in ends if e >= window_start
            ]  # images per second after the settling time
            if late and max(late) > window_start:
                per_image = delivered / len(ends)
                rate = len(late) * per_image / (max(late) - window_start)
                throughput = rate / (case.allowed / case.latency)
        return Report(
            acks=acks,
            results=results,
            light_results=light,
            refusals=refusals,
            refusal_texts=texts,
            delivered_images=delivered,
            rss_mb=rss,
            stall_ms=max(stalls) if stalls else None,
            throughput=throughput,
            elapsed=(max(ends) - started) if ends else 0.0,
        )


async def floor_acks(case: Case, data: Path) -> list[float]:
    """Acknowledgement times of a discord.py bot that only defers, under the same burst."""
    async with fakes(case) as (d, _):
        bot = BotProcess(d, data, launcher=False)
        bot.argv = [sys.executable, str(ROOT / "bench" / "floor_bot.py")]
        async with bot:
            await bot.start_and_wait_ready(within=60)
            await d.wait_until(lambda: d.commands, 30, "the command sync")
            inters = await fire(d, members(case.members), case.jobs, input_image((64, 48)), 1)
            await d.wait_until(lambda: all(callback_at(d, i) for i in inters), 60, "the defers")
            await bot.stop(signal.SIGTERM, within=30)
        return [a - i.created for i in inters if (a := callback_at(d, i))]


CASES = {
    "a": Case("a", jobs=200, members=100, latency=2.0),
    "b": Case("b", jobs=200, members=100, latency=2.0, configured=10, allowed=6),
    "c": Case("c", jobs=50, members=50, latency=2.0, heavy=3, env={}),
    "d": Case(
        "d",
        jobs=1000,
        members=1000,
        latency=5.0,
        input_size=(1600, 1200),
        wait_results=False,
        waves=50,
        env={"REMIXBOT_QUEUE_MAX": "2000"},
    ),
    "a-pg": Case("a-pg", jobs=200, members=100, latency=2.0, postgres=True),
    "a2": Case("a2", jobs=200, members=100, latency=2.0, processes=2),
    "e-small": Case(
        "e-small",
        jobs=10,
        members=1,
        latency=1.0,
        images=4,
        sequential=True,
        result_size=(1152, 864),
    ),
    "e": Case(
        "e",
        jobs=10,
        members=1,
        latency=1.0,
        images=4,
        sequential=True,
        input_size=(4000, 3000),
        result_size=(1152, 864),
    ),
}


def ms(seconds: float) -> str:
    """Seconds as milliseconds."""
    return f"{seconds * 1000:.0f} ms"


async def main(names: list[str]) -> None:
    """Run the named cases and print their figures."""
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            case = CASES[name]
            data = Path(tmp) / f"case-{name}"
            report = await run_bot_case(case, data)
            print(f"case {name}: {case}")
            print(
                f"  acknowledgement p50 {ms(pct(report.acks, 50))}, p99 {ms(pct(report.acks, 99))}"
            )
            if name in ("a", "b", "a-pg", "a2"):
                floor = await floor_acks(case, Path(tmp) / f"floor-{name}")
                print(
                    f"  floor (defer-only discord.py bot): p50 {ms(pct(floor, 50))}, "
                    f"p99 {ms(pct(floor, 99))}; ratio p99 "
                    f"{pct(report.acks, 99) / pct(floor, 99):.2f}"
                )
            if report.results:
                print(
                    f"  time to result p50 {pct(report.results, 50):.1f} s, "
                    f"p95 {pct(report.results, 95):.1f} s, max {max(report.results):.1f} s"
                )
            if report.throughput is not None:
                print(
                    f"  throughput {report.throughput:.0%} of the bound "
                    f"({case.allowed} images per {case.latency:g} s)"
                )
            print(
                f"  refusals {report.refusals}; images delivered {report.delivered_images}; "
                f"peak RSS {report.rss_mb:.0f} MB; longest loop stall "
                f"{report.stall_ms if report.stall_ms is not None else '?'} ms"
            )
            for text in report.refusal_texts[:3]:
                print(f"  refused: {text[:160]}")
            if name == "c":
                alone = await run_bot_case(
                    Case("c0", jobs=50, members=50, latency=2.0), Path(tmp) / "case-c0"
                )
                with_heavy = statistics.median(report.light_results)
                without = statistics.median(alone.light_results)
                print(
                    f"  light members' median wait {with_heavy:.1f} s beside the heavy member, "
                    f"{without:.1f} s without: {with_heavy / without:.2f}x"
                )
            if name.startswith("e"):
                own = [t - case.latency for t in report.results]
                print(
                    f"  the bot's own time per job (median of {len(own)}): {ms(statistics.median(own))}"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=list(CASES), choices=list(CASES))
    asyncio.run(main(parser.parse_args().cases))

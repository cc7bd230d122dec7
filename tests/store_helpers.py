"""Helpers for the store tests, and a worker run as a separate OS process (`python -m`)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from bot.errors import QuotaRefused
from bot.store import CLI_USER_ID, NewJob, PostedRecord, QuotaDefaults, Store, StoreBusy
from tests.databases import execute

# Distinct per process: workers sharing one file must not replay each other's interaction ids.
_ids = itertools.count(os.getpid() * 1_000_000)


def new_job(
    user_id: int = 42,
    guild_id: int | None = 7,
    images: int = 1,
    *,
    interaction_id: int | None = None,
    backend: str = "ideogram",
    role_ids: tuple[int, ...] = (),
    input_key: str | None = None,
    style_ref_keys: tuple[str, ...] = (),
    kind: str = "remix",
    parent_job_id: int | None = None,
    prompt: str = "a cat in a hat",
    channel_id: int | None = 55,
) -> NewJob:
    """A NewJob with a fresh interaction id unless one is given (a Discord job: it has a
    channel; `terminal_job` makes one like `remixbot remix` does)."""
    return NewJob(
        interaction_id=next(_ids) if interaction_id is None else interaction_id,
        guild_id=guild_id,
        channel_id=channel_id,
        user_id=user_id,
        kind=kind,
        parent_job_id=parent_job_id,
        request={"prompt": prompt, "seed": 12, "num_images": images},
        input_key=input_key,
        style_ref_keys=style_ref_keys,
        backend=backend,
        images=images,
        role_ids=role_ids,
    )


def terminal_job(images: int = 1, *, backend: str = "ideogram") -> NewJob:
    """A job as `remixbot remix` makes it: the terminal user, no guild, no channel."""
    return new_job(
        CLI_USER_ID,
        None,
        images,
        interaction_id=None,
        backend=backend,
        channel_id=None,
    )


# A worker's lease (PostgreSQL): short, so a test sees a killed worker's lease run out soon.
WORKER_LEASE = 3.0


def count_open(db: Path | str) -> tuple[int, int]:
    """(open jobs, images they reserve), read with a plain connection (no Store, no reconcile)."""
    ((jobs, images),) = execute(
        db,
        "SELECT count(*), coalesce(sum(images_reserved), 0) FROM jobs"
        " WHERE state IN ('queued', 'running')",
    )
    return int(jobs), int(images)


def books(arg: str) -> Path | str:
    """A worker's database argument: a PostgreSQL URL as it is, else a SQLite file."""
    return arg if arg.startswith("postgresql://") else Path(arg)


async def _open(db: Path | str, data_dir: Path, **kw: Any) -> Store:
    return await Store.open(db, data_dir=data_dir, lease_seconds=WORKER_LEASE, **kw)


async def _reserve(
    db: Path | str, data_dir: Path, user: int, tasks: int, limit: int, start_at: float
) -> None:
    async with await _open(db, data_dir, defaults=QuotaDefaults(limit=limit)) as store:
        # Start together with the other processes, so their transactions really contend.
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def one(i: int) -> int | None:
            try:
                job = await store.submit_job(new_job(user_id=user, interaction_id=None))
            except QuotaRefused:
                return None
            return job.id

        ids = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(tasks))), 60)
        print(json.dumps([i for i in ids if i is not None]), flush=True)


async def _hold(db: Path | str, data_dir: Path, backend: str, ref: str | None, images: int) -> None:
    """Submit one job, set it running, report its id, then wait to be killed (bounded)."""
    async with await _open(db, data_dir, defaults=QuotaDefaults(limit=100)) as store:
        queued = await store.submit_job(new_job(user_id=9, images=images, backend=backend))
        running = await store.submit_job(new_job(user_id=9, images=images, backend=backend))
        await store.mark_running(running.id, ref)
        print(json.dumps({"queued": queued.id, "running": running.id}), flush=True)
        await asyncio.sleep(60)


async def _terminal(db: Path | str, data_dir: Path, seed: int) -> None:
    """Like `remixbot remix` run again and again: reserve, send, settle or fail; until killed.

    Prints a line once it holds its first job; each "backend call" takes a random moment, so a
    kill finds it queued, running or between jobs.
    """
    rng = random.Random(seed)
    async with await _open(db, data_dir, defaults=QuotaDefaults(limit=10_000)) as store:
        for n in range(10_000):
            backend = rng.choice(["ideogram", "task-proxy"])
            job = await store.submit_job(terminal_job(rng.randint(1, 4), backend=backend))
            if n == 0:
                print(json.dumps({"first": job.id}), flush=True)
            await asyncio.sleep(rng.uniform(0, 0.05))
            await store.mark_running(job.id, "task-1" if backend == "task-proxy" else None)
            await asyncio.sleep(rng.uniform(0, 0.1))
            if rng.random() < 0.8:
                await store.settle(job.id, delivered=job.images_reserved, billed=1)
            else:
                await store.fail(job.id, "the backend failed", billed=0)


async def _posted(db: Path | str, data_dir: Path) -> None:
    """Two jobs (a terminal one, a Discord one) posted while another process holds the write
    lock: journal first, then settle_posted, which times out. Waits to be killed (bounded)."""
    async with await _open(
        db, data_dir, defaults=QuotaDefaults(limit=100), busy_timeout=0.3
    ) as store:
        terminal = await store.submit_job(terminal_job(3))
        discord = await store.submit_job(new_job(user_id=9, images=3, backend="task-proxy"))
        for job in (terminal, discord):
            await store.mark_running(job.id, "task-5")
        print(json.dumps({"terminal": terminal.id, "discord": discord.id}), flush=True)
        sys.stdin.readline()  # the test now holds the write lock
        outcomes = []
        for job, messages in ((terminal, ()), (discord, (7001, 7002))):
            record = PostedRecord(job.id, messages, 55 if messages else None, 2, 1, 3)
            await store.journal_posted(record)
            try:
                await store.settle_posted(record)
                outcomes.append("settled")
            except StoreBusy:
                outcomes.append("busy")
        print(json.dumps(outcomes), flush=True)
        await asyncio.sleep(60)


async def _slot(db: Path | str, data_dir: Path, key: str, images: int) -> None:
    """PostgreSQL: hold `images` of backend `key`'s shared budget and a running task-proxy job,
    report, then wait to be killed (bounded)."""
    async with await _open(db, data_dir, defaults=QuotaDefaults(limit=100)) as store:
        assert await store.take_backend_slot(key, "job-1", images, images)
        job = await store.submit_job(new_job(user_id=9, images=1, backend="task-proxy"))
        await store.mark_running(job.id, "task-9")
        print(json.dumps({"running": job.id}), flush=True)
        await asyncio.sleep(60)


def main(argv: list[str]) -> None:
    """`MODE DB DATA_DIR ARGS…`: `reserve … USER TASKS LIMIT START_AT`, `hold … BACKEND REF|-
    IMAGES`, `terminal … SEED`, `posted …` or `slot … KEY IMAGES` (DB: a SQLite file or a PostgreSQL URL)."""
    mode, db, data_dir, args = argv[0], books(argv[1]), Path(argv[2]), argv[3:]
    if mode == "reserve":
        asyncio.run(
            _reserve(db, data_dir, int(args[0]), int(args[1]), int(args[2]), float(args[3]))
        )
    elif mode == "hold":
        ref = None if args[1] == "-" else args[1]
        asyncio.run(_hold(db, data_dir, args[0], ref, int(args[2])))
    elif mode == "terminal":
        asyncio.run(_terminal(db, data_dir, int(args[0])))
    elif mode == "posted":
        asyncio.run(_posted(db, data_dir))
    elif mode == "slot":
        asyncio.run(_slot(db, data_dir, args[0], int(args[1])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

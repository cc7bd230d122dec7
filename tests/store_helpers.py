"""Helpers for the store tests, and a worker run as a separate OS process (`python -m`)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import sqlite3
import sys
import time
from pathlib import Path

from bot.errors import QuotaRefused
from bot.store import CLI_USER_ID, NewJob, PostedRecord, QuotaDefaults, Store, StoreBusy

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


def count_open(db: Path) -> tuple[int, int]:
    """(open jobs, images they reserve), read with a plain connection (no Store, no reconcile)."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(images_reserved), 0) FROM jobs"
            " WHERE state IN ('queued', 'running')"
        ).fetchone()
    finally:
        conn.close()
    return row[0], row[1]


async def _reserve(db: Path, user: int, tasks: int, limit: int, start_at: float) -> None:
    async with await Store.open(db, defaults=QuotaDefaults(limit=limit)) as store:
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


async def _hold(db: Path, backend: str, ref: str | None, images: int) -> None:
    """Submit one job, set it running, report its id, then wait to be killed (bounded)."""
    async with await Store.open(db, defaults=QuotaDefaults(limit=100)) as store:
        queued = await store.submit_job(new_job(user_id=9, images=images, backend=backend))
        running = await store.submit_job(new_job(user_id=9, images=images, backend=backend))
        await store.mark_running(running.id, ref)
        print(json.dumps({"queued": queued.id, "running": running.id}), flush=True)
        await asyncio.sleep(60)


async def _terminal(db: Path, seed: int) -> None:
    """Like `remixbot remix` run again and again: reserve, send, settle or fail; until killed.

    Prints a line once it holds its first job; each "backend call" takes a random moment, so a
    kill finds it queued, running or between jobs.
    """
    rng = random.Random(seed)
    async with await Store.open(db, defaults=QuotaDefaults(limit=10_000)) as store:
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


async def _posted(db: Path) -> None:
    """Two jobs (a terminal one, a Discord one) posted while another process holds the write
    lock: journal first, then settle_posted, which times out. Waits to be killed (bounded)."""
    async with await Store.open(db, defaults=QuotaDefaults(limit=100), busy_timeout=0.3) as store:
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


def main(argv: list[str]) -> None:
    """`reserve DB USER TASKS LIMIT START_AT`, `hold DB BACKEND REF|- IMAGES`, `terminal DB SEED`
    or `posted DB`."""
    mode, db = argv[0], Path(argv[1])
    if mode == "reserve":
        asyncio.run(_reserve(db, int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5])))
    elif mode == "hold":
        ref = None if argv[3] == "-" else argv[3]
        asyncio.run(_hold(db, argv[2], ref, int(argv[4])))
    elif mode == "terminal":
        asyncio.run(_terminal(db, int(argv[2])))
    elif mode == "posted":
        asyncio.run(_posted(db))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

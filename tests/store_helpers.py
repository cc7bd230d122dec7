"""Helpers for the store tests, and a worker run as a separate OS process (`python -m`)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from pathlib import Path

from bot.errors import QuotaRefused
from bot.store import NewJob, QuotaDefaults, Store

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
) -> NewJob:
    """A NewJob with a fresh interaction id unless one is given."""
    return NewJob(
        interaction_id=next(_ids) if interaction_id is None else interaction_id,
        guild_id=guild_id,
        channel_id=55,
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


def main(argv: list[str]) -> None:
    """`reserve DB USER TASKS LIMIT START_AT` or `hold DB BACKEND REF|- IMAGES`."""
    mode, db = argv[0], Path(argv[1])
    if mode == "reserve":
        asyncio.run(_reserve(db, int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5])))
    elif mode == "hold":
        ref = None if argv[3] == "-" else argv[3]
        asyncio.run(_hold(db, argv[2], ref, int(argv[4])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""PostgreSQL's leases: processes on any machine know who is alive, and share a backend key's
in-flight budget; a killed process's jobs and slots come back once its lease runs out."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from bot.store import QuotaDefaults, Store, StoreUnavailable
from tests.databases import execute
from tests.test_store_processes import _spawn

LEASE = 3.0


async def _open(url: str, data_dir: Path, **kw: object) -> Store:
    return await Store.open(
        url, defaults=QuotaDefaults(limit=100), data_dir=data_dir, lease_seconds=LEASE, **kw
    )


async def test_two_processes_share_one_budget(postgres: str, tmp_path: Path) -> None:
    async with await _open(postgres, tmp_path) as a, await _open(postgres, tmp_path) as b:
        assert a.owner != b.owner
        assert await a.take_backend_slot("key", "job-1", 3, 4)
        assert not await b.take_backend_slot("key", "job-2", 2, 4)  # 3 + 2 > 4
        assert await b.take_backend_slot("key", "job-3", 1, 4)
        assert await a.backend_slots_in_use("key") == 4
        # Another backend key has a budget of its own.
        assert await b.take_backend_slot("other", "job-2", 4, 4)
        await a.give_backend_slot("key", "job-1")
        assert await b.take_backend_slot("key", "job-2", 2, 4)
        assert await b.backend_slots_in_use("key") == 3
        # A job larger than the whole budget runs alone: only when nothing else is in flight.
        assert not await a.take_backend_slot("key", "big", 6, 4)
        await b.give_backend_slot("key", "job-2")
        await b.give_backend_slot("key", "job-3")
        assert await a.take_backend_slot("key", "big", 6, 4)
        assert not await b.take_backend_slot("key", "small", 1, 4)
    # A clean stop gives the lease up, and its slots with it.
    assert execute(postgres, "SELECT count(*) FROM owners") == [(0,)]
    assert execute(postgres, "SELECT count(*) FROM inflight") == [(0,)]


async def test_a_killed_process_s_slots_and_jobs_come_back_within_its_lease(
    postgres: str, tmp_path: Path
) -> None:
    async with await _open(postgres, tmp_path) as s:
        proc = _spawn("slot", postgres, tmp_path, "key", "4")
        try:
            running = json.loads(proc.stdout.readline())["running"]
            assert not await s.take_backend_slot("key", "mine", 1, 4)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        killed_at = time.monotonic()
        # Straight after the kill its lease still holds: its job and slots are its own.
        report = await s.reconcile(claim_discord_jobs=True, resumable={"task-proxy"})
        assert report.elsewhere == (running,)
        while not await s.take_backend_slot("key", "mine", 4, 4):
            assert time.monotonic() - killed_at < LEASE + 5, "the killed process's slots stayed"
            await asyncio.sleep(0.1)
        report = await s.reconcile(claim_discord_jobs=True, resumable={"task-proxy"})
        assert [j.id for j in report.resumable] == [running]  # its running task is resumed here
        assert (await s.get_job(running)).state == "running"
        await s.settle(running, delivered=1, billed=1)
        assert await s.check_books() == []
    assert execute(postgres, "SELECT count(*) FROM owners") == [(0,)]


async def test_a_lease_that_ran_out_while_its_process_stalled_is_taken_again(
    postgres: str, tmp_path: Path
) -> None:
    async with await _open(postgres, tmp_path, reconcile=False) as s:
        token = s.owner
        execute(postgres, "UPDATE owners SET expires_at = now() - interval '1 second'")
        async with await _open(postgres, tmp_path) as other:  # sweeps the lease that ran out
            assert execute(postgres, "SELECT token FROM owners") == [(other.owner,)]
            await asyncio.sleep(LEASE / 3 + 0.5)  # s renews: its lease is gone, it takes it anew
            assert sorted(execute(postgres, "SELECT token FROM owners")) == sorted(
                [(token,), (other.owner,)]
            )


async def test_an_unreachable_server_is_one_sentence_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://remixbot:s3cret-pw@/remixbot?host=" + str(tmp_path / "no-server")
    with pytest.raises(StoreUnavailable) as caught:
        await Store.open(url, defaults=QuotaDefaults(), data_dir=tmp_path)
    text = str(caught.value)
    assert text.startswith("Could not reach the job database at postgresql://remixbot@/remixbot")
    assert "check REMIXBOT_DATABASE_URL" in text and "s3cret-pw" not in text

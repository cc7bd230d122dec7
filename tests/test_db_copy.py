"""`remixbot db copy --to postgresql://…`: a SQLite database's books, moved whole and checked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.cli import main
from bot.store import PostedRecord, QuotaDefaults, Store
from tests.databases import execute
from tests.store_helpers import new_job, terminal_job

DEFAULTS = QuotaDefaults(limit=6)


async def _remixbot(*args: str) -> int:
    """`remixbot ARGS…` in this process (its own event loop, on a thread); the exit code."""
    return await asyncio.to_thread(main, list(args))


async def _history(db: Path) -> dict[str, int]:
    """Books with some of everything: policies, jobs in every state, a reroll, messages,
    grants, a forgotten user, stored inputs. Returns the ids the test looks at again."""
    async with await Store.open(db, defaults=DEFAULTS) as s:
        await s.set_default(6, "weekly")
        await s.set_guild(7, 8)
        await s.set_role(7, 70, 10)
        await s.set_exempt_role(7, 71)
        await s.block(99, "spam", guild_id=None)
        key = await s.inputs.put(b"an input image")
        first = await s.submit_job(new_job(images=3, input_key=key, role_ids=(70,)))
        await s.mark_running(first.id, "req-1")
        record = PostedRecord(first.id, (5001, 5002), 55, images=2, withheld=1, billed=3)
        await s.journal_posted(record)
        await s.settle_posted(record)
        reroll = await s.submit_job(
            new_job(user_id=43, kind="reroll", parent_job_id=first.id, input_key=key)
        )
        await s.fail(reroll.id, "the backend said 500", billed=0)
        await s.grant(43, 7, 2)
        gone = await s.submit_job(new_job(user_id=44, images=2))
        await s.settle(gone.id, delivered=2, billed=2)
        await s.forget(44)
        queued = await s.submit_job(new_job(user_id=45, images=2))
        cli = await s.submit_job(terminal_job(1))
        await s.settle(cli.id, delivered=1, billed=1)
        await s.keep_results(first.id, [b"result one", b"result two"])
        await s.set_channel_mode(7, "allow")
        await s.set_channel(7, 55, True)
        await s.set_prompt_block(7, "word", "forbidden")
        await s.set_paused(7, True)
        assert await s.check_books() == []
        return {"first": first.id, "reroll": reroll.id, "queued": queued.id}


async def test_copy_moves_every_row_and_the_books_balance(
    data_dir: Path, postgres: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = data_dir / "remixbot.sqlite3"
    ids = await _history(db)
    async with await Store.open(db, defaults=DEFAULTS, reconcile=False) as s:
        jobs = await s.list_jobs(limit=100)
        policies = await s.policies()
        rules = await s.guild_rules(7)
        quotas = [await s.quota_status(u, 7, (70,)) for u in (42, 43, 44, 45, -1)]

    assert await _remixbot("db", "copy", "--to", postgres) == 0
    out = capsys.readouterr().out
    assert "The books balance." in out and "5 jobs" in out

    async with await Store.open(postgres, defaults=DEFAULTS, data_dir=data_dir) as pg:
        assert await pg.list_jobs(limit=100) == jobs
        assert await pg.policies() == policies
        assert await pg.guild_rules(7) == rules
        assert await pg.result_images(ids["first"]) == [b"result one", b"result two"]
        assert [await pg.quota_status(u, 7, (70,)) for u in (42, 43, 44, 45, -1)] == quotas
        assert (await pg.job_for_message(5002)).id == ids["first"]
        assert await pg.backend_cost(ids["first"]) == ("billed", 3)
        assert (await pg.get_job(ids["reroll"])).parent_job_id == ids["first"]
        assert await pg.check_books() == []
        # The stored images stay where they were; the copied rows still name them.
        job = await pg.get_job(ids["first"])
        assert await pg.inputs.get(job.input_key) == b"an input image"
        # New rows continue after the copied ones, and the copied open job can still close.
        fresh = await pg.submit_job(new_job(user_id=46))
        assert fresh.id > max(j.id for j in jobs)
        await pg.fail(ids["queued"], "test over", billed=0)
        await pg.fail(fresh.id, "test over", billed=0)
        assert await pg.check_books() == []
    rows = {t: n for (t, n) in execute(postgres, "SELECT 'ledger', count(*) FROM quota_ledger")}
    assert rows["ledger"] >= 10


async def test_copy_refuses_a_database_that_already_holds_books(
    data_dir: Path, postgres: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await _history(data_dir / "remixbot.sqlite3")
    assert await _remixbot("db", "copy", "--to", postgres) == 0
    before = execute(postgres, "SELECT count(*) FROM quota_ledger")
    capsys.readouterr()
    assert await _remixbot("db", "copy", "--to", postgres) == 2
    err = capsys.readouterr().err
    assert "already holds remixbot books" in err and "copy into an empty database" in err
    assert execute(postgres, "SELECT count(*) FROM quota_ledger") == before


async def test_copy_refuses_while_the_sqlite_file_is_in_use(
    data_dir: Path, postgres: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = data_dir / "remixbot.sqlite3"
    await _history(db)
    async with await Store.open(db, defaults=DEFAULTS):  # the bot, still running
        assert await _remixbot("db", "copy", "--to", postgres) == 2
    assert "still in use by a running remixbot" in capsys.readouterr().err
    assert execute(
        postgres,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
    ) == [(0,)]


async def test_copy_wants_a_postgresql_url(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _remixbot("db", "copy", "--to", "mysql://x") == 2
    assert "--to must be a postgresql:// URL" in capsys.readouterr().err

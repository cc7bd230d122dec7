"""Quota rules on each database: periods, effective limits, blocks, grants, resets, concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from bot.errors import QuotaRefused
from bot.store import QuotaDefaults, QuotaExceeded, Store, UserBlocked, pg_schema
from bot.store import schema as sqlite_schema
from bot.store.periods import period_bounds
from tests.databases import execute
from tests.store_helpers import new_job

T0 = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def books(database: Path | str, tmp_path: Path) -> tuple[Path | str, Path]:
    """Where each test's store lives: the database under test, and its data folder."""
    return database, tmp_path


async def _open(books: tuple[Path | str, Path], **kw) -> Store:
    database, data_dir = books
    return await Store.open(database, defaults=QuotaDefaults(**kw), data_dir=data_dir)


def test_period_bounds_daily_weekly_monthly_with_reset_hour() -> None:
    d = datetime
    assert period_bounds("daily", 0, d(2026, 11, 18, 12, tzinfo=UTC)) == (
        d(2026, 11, 18, tzinfo=UTC),
        d(2026, 11, 19, tzinfo=UTC),
    )
    # Before the reset hour the period started yesterday.
    assert period_bounds("daily", 6, d(2026, 11, 18, 5, 59, tzinfo=UTC)) == (
        d(2026, 11, 17, 6, tzinfo=UTC),
        d(2026, 11, 18, 6, tzinfo=UTC),
    )
    assert period_bounds("daily", 6, d(2026, 11, 18, 6, tzinfo=UTC))[0] == d(
        2026, 11, 18, 6, tzinfo=UTC
    )
    # Weeks start on Monday at the reset hour.
    assert period_bounds("weekly", 3, d(2026, 11, 18, 12, tzinfo=UTC)) == (
        d(2026, 11, 16, 3, tzinfo=UTC),
        d(2026, 11, 23, 3, tzinfo=UTC),
    )
    assert period_bounds("weekly", 3, d(2026, 11, 16, 2, tzinfo=UTC))[0] == d(
        2026, 11, 9, 3, tzinfo=UTC
    )
    assert period_bounds("monthly", 0, d(2026, 12, 31, 23, tzinfo=UTC)) == (
        d(2026, 12, 1, tzinfo=UTC),
        d(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("monthly", 5, d(2027, 3, 1, 4, tzinfo=UTC)) == (
        d(2027, 2, 1, 5, tzinfo=UTC),
        d(2027, 3, 1, 5, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="daily, weekly or monthly"):
        period_bounds("yearly", 0, T0)


async def test_refusal_says_what_is_left_and_when_it_resets(books: tuple[Path | str, Path]) -> None:
    async with await _open(books, limit=25) as s:
        job = await s.submit_job(new_job(images=4), now=T0)
        await s.settle(job.id, delivered=4, now=T0)
        for _ in range(19):
            await s.submit_job(new_job(images=1), now=T0)
        with pytest.raises(QuotaExceeded) as info:
            await s.submit_job(new_job(images=4), now=T0)
        exc = info.value
        assert isinstance(exc, QuotaRefused) and exc.exit_code == 3
        assert (exc.remaining, exc.limit, exc.needed) == (2, 25, 4)
        assert exc.resets_at == datetime(2026, 11, 19, tzinfo=UTC)
        assert str(exc) == (
            "You have 2 of 25 images left today; this needs 4. "
            "Your quota resets at 2026-11-19 00:00 UTC."
        )
        # A surface fills in the reset time as it shows times (Discord: a live timestamp).
        assert exc.sentence("<t:1:R>").endswith("Your quota resets <t:1:R>.")
        # Exactly what is left still fits.
        await s.submit_job(new_job(images=2), now=T0)
        for job in await s.list_jobs(state="queued", limit=100):
            await s.fail(job.id, "test over", billed=0)
        assert await s.check_books() == []


async def test_a_limit_of_zero_says_remixing_is_switched_off(
    books: tuple[Path | str, Path],
) -> None:
    async with await _open(books, limit=0) as s:
        with pytest.raises(QuotaExceeded) as info:
            await s.submit_job(new_job(images=1), now=T0)
        assert str(info.value) == (
            "Remixing is switched off for you here (a limit of 0 images today); "
            "a server admin can change that."
        )
        assert info.value.sentence("<t:1:R>") == str(info.value)  # no reset to wait for
        assert await s.check_books() == []


async def test_period_boundary_and_reset_hour(books: tuple[Path | str, Path]) -> None:
    async with await _open(books, limit=2, reset_hour=6) as s:
        before = datetime(2026, 11, 18, 5, 59, tzinfo=UTC)
        a = await s.submit_job(new_job(images=2), now=before)
        with pytest.raises(QuotaExceeded) as info:
            await s.submit_job(new_job(), now=before)
        assert info.value.resets_at == datetime(2026, 11, 18, 6, tzinfo=UTC)
        # Settling after the boundary still counts in the period the job was reserved in.
        after = datetime(2026, 11, 18, 6, 0, tzinfo=UTC)
        await s.settle(a.id, delivered=2, now=after)
        old = await s.quota_status(42, 7, now=before)
        assert (old.used, old.remaining) == (2, 0)
        new = await s.quota_status(42, 7, now=after)
        assert (new.used, new.reserved, new.remaining) == (0, 0, 2)
        assert new.resets_at == datetime(2026, 11, 19, 6, tzinfo=UTC)
        await s.submit_job(new_job(images=2), now=after)
        # Weekly: switching the period keeps the ledger and recounts over the week.
        await s.set_default(3, "weekly")
        status = await s.quota_status(42, 7, now=after)
        assert (status.period, status.limit, status.used, status.reserved) == ("weekly", 3, 2, 2)
        assert status.remaining == 0
        assert status.resets_at == datetime(2026, 11, 23, 6, tzinfo=UTC)


async def test_scopes_are_per_guild_and_dms_are_their_own(books: tuple[Path | str, Path]) -> None:
    async with await _open(books, limit=1) as s:
        await s.submit_job(new_job(guild_id=1), now=T0)
        await s.submit_job(new_job(guild_id=2), now=T0)
        await s.submit_job(new_job(guild_id=None), now=T0)
        for guild in (1, 2, None):
            with pytest.raises(QuotaExceeded):
                await s.submit_job(new_job(guild_id=guild), now=T0)
        # Another user is untouched.
        await s.submit_job(new_job(user_id=43, guild_id=1), now=T0)


async def test_a_server_limit_below_the_default_applies_and_a_role_tier_raises_it(
    books: tuple[Path | str, Path],
) -> None:
    async with await _open(books, limit=20) as s:
        await s.set_guild(7, 5)  # the server's admins want fewer than the bot's default
        status = await s.quota_status(1, 7)
        assert (status.limit, status.remaining) == (5, 5)
        assert (await s.quota_status(1, 8)).limit == 20  # other servers keep the default
        assert (await s.quota_status(1, None)).limit == 20  # and so do direct messages
        # The reserving insert applies it too: 5 fit, a sixth image does not.
        await s.submit_job(new_job(user_id=1, guild_id=7, images=5), now=T0)
        with pytest.raises(QuotaExceeded) as info:
            await s.submit_job(new_job(user_id=1, guild_id=7, images=1), now=T0)
        assert (info.value.limit, info.value.remaining) == (5, 0)
        await s.submit_job(new_job(user_id=1, guild_id=8, images=6), now=T0)
        # A role tier above the server's limit raises the member; one below it does not lower.
        await s.set_role(7, 100, 8)
        await s.set_role(7, 101, 2)
        assert (await s.quota_status(1, 7, [100])).limit == 8
        assert (await s.quota_status(1, 7, [101])).limit == 5
        assert (await s.quota_status(1, 7, [100, 101])).limit == 8
        await s.submit_job(new_job(user_id=1, guild_id=7, images=3, role_ids=(100,)), now=T0)
        with pytest.raises(QuotaExceeded):
            await s.submit_job(new_job(user_id=1, guild_id=7, images=1, role_ids=(101,)), now=T0)
        # Without its limit the server is back on the default.
        await s.set_guild(7, None)
        assert (await s.quota_status(1, 7, [101])).limit == 20


async def test_role_tiers_raise_members_and_exempt_roles_are_unlimited(
    books: tuple[Path | str, Path],
) -> None:
    async with await _open(books, limit=5) as s:
        assert (await s.quota_status(1, 7)).limit == 5
        await s.set_guild(7, 10)
        assert (await s.quota_status(1, 7)).limit == 10
        assert (await s.quota_status(1, 8)).limit == 5  # other guilds keep the default
        await s.set_role(7, 100, 20)
        await s.set_role(7, 101, 50)
        await s.set_role(8, 102, 99)  # a role tier of another guild does not apply
        assert (await s.quota_status(1, 7, [100])).limit == 20
        assert (await s.quota_status(1, 7, [100, 101, 102])).limit == 50
        assert (await s.quota_status(1, None, [101])).limit == 5  # DMs: the default only
        await s.set_exempt_role(7, 200)
        status = await s.quota_status(1, 7, [100, 200])
        assert (status.limit, status.remaining, status.exempt) == (None, None, True)
        job = await s.submit_job(new_job(user_id=1, images=8, role_ids=(200,)), now=T0)
        await s.settle(job.id, delivered=8, billed=8)
        assert (await s.quota_status(1, 7, [200], now=T0)).used == 8  # still counted
        with pytest.raises(QuotaExceeded):
            await s.submit_job(new_job(user_id=1, images=13, role_ids=(100,)), now=T0)
        await s.set_exempt_role(7, 200, False)
        assert (await s.quota_status(1, 7, [200])).limit == 10
        await s.set_role(7, 101, None)
        await s.set_guild(7, None)
        policies = await s.policies()
        assert (policies.guilds, policies.roles) == ({}, {(7, 100): 20, (8, 102): 99})


async def test_block_refuses_with_reason_and_unblock_lifts_it(
    books: tuple[Path | str, Path],
) -> None:
    async with await _open(books, limit=5) as s:
        await s.block(42, "spamming the channel", guild_id=None)
        with pytest.raises(UserBlocked) as info:
            await s.submit_job(new_job())
        assert str(info.value) == "You are blocked from remixing: spamming the channel."
        assert info.value.exit_code == 3
        assert (await s.quota_status(42, 7)).blocked_reason == "spamming the channel"
        assert await s.list_jobs() == []
        assert (await s.unblock(42, guild_id=None)).lifted is True
        assert (await s.unblock(42, guild_id=None)).lifted is False
        await s.submit_job(new_job())


async def test_a_servers_block_holds_there_only_and_the_owners_everywhere(
    books: tuple[Path | str, Path],
) -> None:
    async with await _open(books, limit=5) as s:
        await s.block(42, "spam in A", guild_id=1)
        with pytest.raises(UserBlocked, match="spam in A"):
            await s.submit_job(new_job(guild_id=1), now=T0)
        status = await s.quota_status(42, 1)
        assert (status.blocked_here, status.blocked_everywhere) == ("spam in A", None)
        # Server B and direct messages are not server A's to decide.
        await s.submit_job(new_job(guild_id=2), now=T0)
        await s.submit_job(new_job(guild_id=None), now=T0)
        assert (await s.quota_status(42, 2)).blocked_reason is None
        assert (await s.quota_status(42, None)).blocked_reason is None

        # The owner's block holds everywhere; its reason is the one shown where both hold.
        await s.block(42, "abuse", guild_id=None)
        for guild in (1, 2, 3, None):
            with pytest.raises(UserBlocked, match="abuse"):
                await s.submit_job(new_job(guild_id=guild), now=T0)
        both = await s.quota_status(42, 1)
        assert (both.blocked_everywhere, both.blocked_here) == ("abuse", "spam in A")
        assert [(b.guild_id, b.reason) for b in (await s.policies()).blocks] == [
            (None, "abuse"),
            (1, "spam in A"),
        ]

        # A server's unblock lifts its own block only; the owner's stays, and is named.
        done = await s.unblock(42, guild_id=1)
        assert done.lifted and [(b.guild_id, b.reason) for b in done.still] == [(None, "abuse")]
        done = await s.unblock(42, guild_id=2)
        assert not done.lifted and [b.everywhere for b in done.still] == [True]
        with pytest.raises(UserBlocked, match="abuse"):
            await s.submit_job(new_job(guild_id=1), now=T0)

        # The owner's unblock lifts the bot-wide block and names the servers' blocks left.
        await s.block(42, "spam in B", guild_id=2)
        done = await s.unblock(42, guild_id=None)
        assert done.lifted and [(b.guild_id, b.reason) for b in done.still] == [(2, "spam in B")]
        await s.submit_job(new_job(guild_id=1), now=T0)
        with pytest.raises(UserBlocked, match="spam in B"):
            await s.submit_job(new_job(guild_id=2), now=T0)
        # Another user blocked nowhere is untouched throughout.
        await s.submit_job(new_job(user_id=43, guild_id=2), now=T0)


def _books_before_block_scopes(database: Path | str) -> None:
    """Books made by the migrations before blocks had a scope (SQLite's 0001-0009,
    PostgreSQL's 0001-0003), with a block stored as it was then: bot-wide, by user."""
    if isinstance(database, Path):
        old = Migrations("remixbot.store")
        for m in sqlite_schema.MIGRATIONS._migrations:
            if m.name < "0010":
                old(name=m.name)(m.fn)
        conn = sqlite3.connect(database, isolation_level=None)
        old.apply(Database(conn))
        conn.close()
    else:
        earlier = tuple(m for m in pg_schema.MIGRATIONS if m[0] < "0004")
        with psycopg.connect(database, autocommit=True) as conn:
            for name, sql in earlier:
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS remixbot_migrations"
                        " (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    )
                    conn.execute("INSERT INTO remixbot_migrations (name) VALUES (%s)", (name,))
    execute(
        database,
        "INSERT INTO policy_blocked (user_id, reason, blocked_at) VALUES (?, ?, ?)",
        (42, "blocked before scopes", "2026-01-02T03:04:05.000000+00:00"),
    )


async def test_blocks_stored_before_scopes_become_bot_wide(
    books: tuple[Path | str, Path],
) -> None:
    database, _ = books
    _books_before_block_scopes(database)
    async with await _open(books, limit=5) as s:
        [block] = (await s.policies()).blocks
        assert (block.user_id, block.guild_id, block.reason) == (42, None, "blocked before scopes")
        assert block.blocked_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        for guild in (1, 7, None):  # it held everywhere, and still does
            with pytest.raises(UserBlocked, match="blocked before scopes"):
                await s.submit_job(new_job(guild_id=guild), now=T0)
        # A server's admins cannot lift it; the owner can.
        assert not (await s.unblock(42, guild_id=7)).lifted
        assert (await s.unblock(42, guild_id=None)).lifted
        await s.submit_job(new_job(guild_id=7), now=T0)
        # The new shape takes a server's block beside a bot-wide one for the same user.
        await s.block(42, "in 7", guild_id=7)
        await s.block(42, "everywhere", guild_id=None)
        assert len((await s.policies()).blocks) == 2


async def test_grant_adds_to_the_period_and_reset_forgives_charges(
    books: tuple[Path | str, Path],
) -> None:
    async with await _open(books, limit=2) as s:
        a = await s.submit_job(new_job(images=2), now=T0)
        await s.settle(a.id, delivered=2, now=T0)
        with pytest.raises(QuotaExceeded):
            await s.submit_job(new_job(), now=T0)
        status = await s.grant(42, 7, 3, now=T0)
        assert (status.granted, status.remaining) == (3, 3)
        b = await s.submit_job(new_job(images=3), now=T0)
        with pytest.raises(QuotaExceeded) as info:
            await s.submit_job(new_job(), now=T0)
        assert (info.value.remaining, info.value.limit) == (0, 5)
        # The grant does not carry into the next period.
        tomorrow = T0 + timedelta(days=1)
        assert (await s.quota_status(42, 7, now=tomorrow)).remaining == 2
        # Reset forgives what was charged; the job in flight stays reserved.
        status = await s.reset(42, 7, now=T0)
        assert (status.used, status.reserved, status.remaining) == (0, 3, 2)
        await s.settle(b.id, delivered=1, now=T0)
        status = await s.quota_status(42, 7, now=T0)
        assert (status.used, status.reserved, status.remaining) == (1, 0, 4)
        assert (await s.reset(42, 7, now=T0)).remaining == 5
        assert (await s.reset(42, 7, now=T0)).remaining == 5  # nothing left to forgive
        assert await s.check_books() == []


async def test_200_concurrent_reservations_accept_exactly_the_limit(
    books: tuple[Path | str, Path],
) -> None:
    async with await _open(books, limit=5) as s:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(s.submit_job(new_job(images=1)) for _ in range(200)), return_exceptions=True
            ),
            60,
        )
        accepted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, QuotaExceeded)]
        assert (len(accepted), len(refused)) == (5, 195)
        status = await s.quota_status(42, 7)
        assert (status.reserved, status.remaining) == (5, 0)
        for job in accepted[:3]:
            await s.settle(job.id, delivered=1, billed=1)
        for job in accepted[3:]:
            await s.fail(job.id, "backend down", billed=0)
        assert await s.check_books() == []
        status = await s.quota_status(42, 7)
        assert (status.used, status.reserved, status.remaining) == (3, 0, 2)
        # Two double-clicks with one image left: exactly one is accepted.
        await s.settle((await s.submit_job(new_job())).id, delivered=1)
        results = await asyncio.gather(
            s.submit_job(new_job()), s.submit_job(new_job()), return_exceptions=True
        )
        assert sum(not isinstance(r, BaseException) for r in results) == 1

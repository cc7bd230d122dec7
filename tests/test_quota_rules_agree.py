"""The reserving insert and the quota report apply the same rules, over many random policies.

submit_job decides in one SQL statement; quota_status (and the refusal sentence) spell the rules
out in Python. On both databases (each has its own SQL for the insert), both must agree on every mix of default, guild override, role tiers, exempt roles,
blocks in every scope, grants, resets, earlier jobs, periods and direct messages.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store import QuotaDefaults, QuotaExceeded, Store, UserBlocked
from tests.store_helpers import new_job

NOW = datetime(2026, 11, 18, 12, 30, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize("reset_hour", [0, 13])
async def test_insert_and_report_agree_on_random_policies(
    database: Path | str, tmp_path: Path, reset_hour: int
) -> None:
    rng = random.Random(reset_hour)
    defaults = QuotaDefaults(limit=4, period="daily", reset_hour=reset_hour)
    outcomes = {"accepted": 0, "quota": 0, "blocked": 0, "exempt": 0, "blocked elsewhere": 0}
    async with await Store.open(database, defaults=defaults, data_dir=tmp_path) as s:
        for trial in range(120):
            user, guild = 10_000 + trial, rng.choice([None, 500 + trial % 7])
            if rng.random() < 0.5:
                await s.set_default(rng.randint(0, 6), rng.choice(["daily", "weekly", "monthly"]))
            if guild is not None and rng.random() < 0.5:
                await s.set_guild(guild, rng.choice([None, rng.randint(0, 9)]))
            roles = rng.sample(range(1, 6), rng.randint(0, 3))
            if guild is not None:
                for role in roles:
                    await s.set_role(guild, role, rng.choice([None, rng.randint(0, 12)]))
                    await s.set_exempt_role(guild, role, rng.random() < 0.1)
            if rng.random() < 0.2:  # everywhere, in this server, or in another server only
                where = rng.choice([None, guild, 900])
                await s.block(user, f"testing in {where}", guild_id=where)
            # Earlier use: some in this period, some long ago, some still open.
            for _ in range(rng.randint(0, 3)):
                when = NOW - timedelta(hours=rng.choice([0, 1, 20, 24 * 8, 24 * 40]))
                try:
                    job = await s.submit_job(new_job(user, guild, rng.randint(1, 3)), now=when)
                except (QuotaExceeded, UserBlocked):
                    continue
                if rng.random() < 0.7:
                    await s.settle(job.id, delivered=rng.randint(0, job.images_reserved), now=when)
            if rng.random() < 0.3:
                await s.grant(user, guild, rng.randint(1, 4), now=NOW)
            if rng.random() < 0.2:
                await s.reset(user, guild, now=NOW)

            status = await s.quota_status(user, guild, roles, now=NOW)
            n = rng.randint(1, 6)
            request = new_job(user, guild, n, role_ids=tuple(roles))
            if status.blocked_reason is None and await s.blocks(user):
                outcomes["blocked elsewhere"] += 1  # not here: the quota alone decides
            if status.blocked_reason is not None:
                with pytest.raises(UserBlocked) as blocked:
                    await s.submit_job(request, now=NOW)
                assert str(blocked.value).endswith(f"{status.blocked_reason}.")
                outcomes["blocked"] += 1
            elif status.exempt or n <= status.remaining:
                job = await s.submit_job(request, now=NOW)
                assert job == await s.get_job(job.id)
                outcomes["exempt" if status.exempt else "accepted"] += 1
            else:
                with pytest.raises(QuotaExceeded) as info:
                    await s.submit_job(request, now=NOW)
                assert info.value.remaining == status.remaining
                assert info.value.resets_at == status.resets_at
                outcomes["quota"] += 1
        assert await s.check_books() == []
    # The random mix reached every branch, so agreement was tested on each.
    assert all(outcomes.values()), outcomes

"""The store's member and admin parts on each database (a SQLite file, PostgreSQL): kept results (with the retention
sweep and forget), a server's rules (channels, pause, log channel, prompt block list) and its
usage this period."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.errors import InvalidRequest
from bot.store import QuotaDefaults, Store
from bot.store.guilds import GuildRules
from tests.store_helpers import new_job


@pytest.fixture
async def store(database: Path | str, tmp_path: Path):
    s = await Store.open(database, defaults=QuotaDefaults(limit=10), data_dir=tmp_path)
    yield s
    await s.close()


def _age(store: Store, key: str, days: float) -> None:
    t = time.time() - days * 86400
    os.utime(store.results.path(key), (t, t))


async def test_results_are_kept_in_order_and_swept_with_their_job(store: Store) -> None:
    now = datetime.now(UTC)
    then = now - timedelta(days=40)
    old = await store.submit_job(new_job(images=2), now=then)
    await store.settle(old.id, delivered=2, billed=2, now=then)
    recent = await store.submit_job(new_job())
    await store.settle(recent.id, delivered=1, billed=1)
    old_keys = await store.keep_results(old.id, [b"first result", b"second result"])
    [recent_key] = await store.keep_results(recent.id, [b"a recent result"])
    assert await store.result_keys(old.id) == old_keys
    assert await store.result_images(old.id) == [b"first result", b"second result"]
    for key in old_keys:
        _age(store, key, 40)
    assert await store.sweep_inputs(now) == 2
    assert await store.result_images(old.id) == []  # listed, but the files are gone
    assert await store.result_images(recent.id) == [b"a recent result"]
    assert store.results.path(recent_key).exists()


async def test_forget_deletes_a_member_s_kept_results(store: Store) -> None:
    mine = await store.submit_job(new_job(user_id=5))
    await store.settle(mine.id, delivered=1, billed=1)
    theirs = await store.submit_job(new_job(user_id=6))
    await store.settle(theirs.id, delivered=1, billed=1)
    [key] = await store.keep_results(mine.id, [b"only mine"])
    [shared] = await store.keep_results(theirs.id, [b"the same bytes"])
    await store.keep_results(mine.id, [b"only mine", b"the same bytes"])
    report = await store.forget(5)
    assert report.inputs_deleted == 1  # the shared file stays for the other member
    assert not store.results.path(key).exists()
    assert store.results.path(shared).exists()
    assert await store.result_keys(mine.id) == []


async def test_a_server_s_rules(store: Store) -> None:
    assert await store.guild_rules(7) == GuildRules(guild_id=7)
    rules = await store.set_channel_mode(7, "allow")
    assert not rules.channel_allowed(100)
    rules = await store.set_channel(7, 100, True)
    assert rules.channel_allowed(100) and not rules.channel_allowed(200)
    rules = await store.set_channel_mode(7, "deny")
    assert not rules.channel_allowed(100) and rules.channel_allowed(200)
    assert (await store.set_paused(7, True)).paused
    assert (await store.set_log_channel(7, 300)).log_channel_id == 300
    assert await store.guild_rules(8) == GuildRules(guild_id=8)  # per server
    with pytest.raises(InvalidRequest, match="one of all, allow, deny"):
        await store.set_channel_mode(7, "some")


@pytest.mark.parametrize(
    ("kind", "text", "prompt", "blocked"),
    [
        ("word", "Gore", "lots of GORE here", True),
        ("word", "gore", "a gorey story", False),  # whole words only
        ("word", "red  wine", "a glass of red wine", True),  # phrases, spaces tidied
        ("pattern", r"b[l1]o+d", "so much b1ooood", True),
        ("pattern", r"b[l1]o+d", "a blond cat", False),
    ],
)
async def test_the_prompt_block_list(
    store: Store, kind: str, text: str, prompt: str, blocked: bool
) -> None:
    rules = await store.set_prompt_block(7, kind, text)
    assert rules.blocks_prompt(prompt) is blocked
    rules = await store.set_prompt_block(7, kind, text, blocked=False)
    assert not rules.blocks_prompt(prompt)


async def test_a_bad_pattern_is_refused_in_one_sentence(store: Store) -> None:
    with pytest.raises(InvalidRequest, match="not a valid regular expression"):
        await store.set_prompt_block(7, "pattern", "(unclosed")
    with pytest.raises(InvalidRequest, match="1 to 200 characters"):
        await store.set_prompt_block(7, "word", "x" * 201)
    assert (await store.guild_rules(7)).patterns == ()


async def test_usage_this_period(store: Store) -> None:
    for user, images, delivered in ((1, 3, 3), (2, 2, 1), (1, 1, 1), (3, 2, 0)):
        job = await store.submit_job(new_job(user_id=user, images=images))
        if delivered:
            await store.settle(job.id, delivered=delivered, billed=images)
        else:
            await store.fail(job.id, "lost", "unknown")
    elsewhere = await store.submit_job(new_job(user_id=9, guild_id=8, images=4))
    await store.settle(elsewhere.id, delivered=4, billed=4)
    usage = await store.guild_usage(7)
    assert usage.images == 5
    assert usage.top == ((1, 4), (2, 1))
    assert (usage.billed, usage.unknown_bills) == (6, 1)
    assert (await store.guild_usage(8)).images == 4

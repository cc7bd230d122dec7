"""Two `remixbot run` processes, shards 0 and 1 of 2, on one PostgreSQL and one data folder:
members in guilds on both shards are served, the backend's in-flight cap holds over both, each
member's quota holds in each guild, and killing one process leaves the other serving its shard,
taking over the killed one's jobs once its lease runs out, with the books balanced."""

from __future__ import annotations

import signal
from pathlib import Path

from bot.settings import load_settings
from bot.store import Store
from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import BotProcess, ephemeral_texts, png_bytes
from tests.fakeremix import running_fake
from tests.fakeremix.helpers import fake_env


def _shown(d: FakeDiscord, inter: object) -> str:
    msg = d.original(inter)
    return (msg.content or "") if msg is not None else ""


def _has_result(d: FakeDiscord, inter: object) -> bool:
    msg = d.original(inter)
    return msg is not None and bool(msg.attachments)


async def test_two_shard_processes_share_the_books_and_the_backend(
    postgres: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"  # the shared data volume: stored inputs, journal, command sync
    async with FakeDiscord() as d, running_fake() as r:
        guild_a, chan_a = d.add_guild(shard=0, shard_count=2)
        guild_b, chan_b = d.add_guild(shard=1, shard_count=2)
        env = fake_env(
            r,
            REMIXBOT_DATABASE_URL=postgres,
            REMIXBOT_SHARD_COUNT="2",
            REMIXBOT_LEASE_SECONDS="3",
            REMIXBOT_INFLIGHT_IMAGES="2",
            REMIXBOT_DEFAULT_LIMIT="3",
            REMIXBOT_BACKEND_TIMEOUT="60",
        )
        shard0 = BotProcess(d, data, launcher=False, env={**env, "REMIXBOT_SHARDS": "0"})
        shard1 = BotProcess(d, data, launcher=False, env={**env, "REMIXBOT_SHARDS": "1"})
        async with shard0, shard1:
            await shard0.start_and_wait_ready()
            await shard1.start_and_wait_ready()
            await d.wait_until(lambda: d.commands, 15, "the command sync")
            # Each process identified with its shard and was told of its own guilds only.
            sessions = {s.shard: s for s in d.gateway.sessions.values()}
            assert set(sessions) == {(0, 2), (1, 2)}
            for shard, guild in (((0, 2), guild_a), ((1, 2), guild_b)):
                created = [
                    f.d["id"]
                    for f in d.frames
                    if f.t == "GUILD_CREATE" and f.conn == sessions[shard].conn
                ]
                assert guild in created and len(set(created) & {guild_a, guild_b}) == 1

            # Six one-image remixes at once, three in each guild: the backend never has more
            # than two images in flight, though each process alone would send two.
            r.api_delay = 0.8
            asked = []
            for chan in (chan_a, chan_b):
                for n, user in enumerate((d.alice, d.bob, d.owner)):
                    image = d.upload_attachment(
                        f"{n}.png", png_bytes(color=(60 * n, 90, 200)), channel_id=chan
                    )
                    options = {"image": image, "prompt": f"p{n}", "num_images": 1}
                    asked.append(await d.slash("remix", options, user=user, channel_id=chan))
            await d.wait_until(
                lambda: all(_has_result(d, i) for i in asked), 60, "six results in two guilds"
            )
            assert r.peak_inflight == 2

            # Alice has 3 images a day in each server: 1 used in each, 3 more are refused in
            # each, by the process serving that server, from the one set of books.
            r.api_delay = 0.0
            for chan in (chan_a, chan_b):
                image = d.upload_attachment("x.png", png_bytes(), channel_id=chan)
                await d.slash(
                    "remix",
                    {"image": image, "prompt": "more", "num_images": 3},
                    user=d.alice,
                    channel_id=chan,
                )
            await d.wait_until(
                lambda: sum("You have 2 of 3 images left" in t for t in ephemeral_texts(d)) == 2,
                15,
                "the refusal in each guild",
            )

            # Shard 1's process is killed while one of its jobs is at the backend.
            r.api_delay = 30.0
            calls = len(r.api_requests())
            image = d.upload_attachment("lost.png", png_bytes(), channel_id=chan_b)
            lost = await d.slash(
                "remix", {"image": image, "prompt": "lost"}, user=d.bob, channel_id=chan_b
            )
            await d.wait_until(lambda: len(r.api_requests()) > calls, 15, "at the backend")
            shard1.proc.send_signal(signal.SIGKILL)
            assert await shard1.wait(10) == -signal.SIGKILL
            r.api_delay = 0.0
            # The other process goes on serving its own shard…
            image = d.upload_attachment("after.png", png_bytes(), channel_id=chan_a)
            after = await d.slash(
                "remix", {"image": image, "prompt": "after"}, user=d.owner, channel_id=chan_a
            )
            await d.wait_until(lambda: _has_result(d, after), 30, "shard 0 still serving")
            # …and, once the killed process's lease ran out, closes its job at the synchronous
            # backend (refunded; its member told in their own message, with Retry).
            await d.wait_until(lambda: "restarted" in _shown(d, lost), 30, "the lost job closed")
            assert await shard0.stop(signal.SIGTERM) == 0

        settings = load_settings({**env, **d.env(), "REMIXBOT_DATA_DIR": str(data)}, dotenv=None)
        async with await Store.from_settings(settings) as store:
            jobs = sorted(await store.list_jobs(), key=lambda j: j.id)
            states = [j.state for j in jobs]
            assert states.count("delivered") == 7 and states.count("unknown") == 1
            assert {j.guild_id for j in jobs} == {int(guild_a), int(guild_b)}
            assert await store.check_books() == []
            for guild in (guild_a, guild_b):
                assert (await store.quota_status(int(d.alice["id"]), int(guild))).used == 1

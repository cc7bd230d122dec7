"""Defect 9: SIGKILL the bot during a burst and start it again on the same data directory. Jobs
that never reached the backend run after the restart and post; a job lost at a synchronous
backend is refunded and its member told in their own message, with a Retry button for them.
On both databases: with PostgreSQL the killed process's jobs are taken over once its lease runs
out (REMIXBOT_LEASE_SECONDS, short here)."""

from __future__ import annotations

import signal
from pathlib import Path

from bot.settings import load_settings
from bot.store import Store
from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import BotProcess, ephemeral_texts, png_bytes
from tests.fakeremix import running_fake
from tests.fakeremix.helpers import fake_env


async def test_a_crash_during_a_burst_loses_no_member(database: Path | str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    books = {} if isinstance(database, Path) else {"REMIXBOT_DATABASE_URL": database}
    async with FakeDiscord() as d, running_fake() as r:
        env = fake_env(
            r,
            REMIXBOT_INFLIGHT_IMAGES="1",
            REMIXBOT_BACKEND_TIMEOUT="60",
            REMIXBOT_LEASE_SECONDS="3",
            **books,
        )
        r.api_delay = 30.0  # the first job sits at the backend when the crash comes
        users = [d.alice, d.bob, d.alice]
        first = BotProcess(d, data, launcher=False, env=env)
        async with first:
            await first.start_and_wait_ready()
            await d.wait_until(lambda: d.commands, 15, "the command sync")
            asked = []
            for n, user in enumerate(users):
                image = d.upload_attachment(f"{n}.png", png_bytes(color=(40 * n, 90, 200)))
                asked.append(await d.slash("remix", {"image": image, "prompt": f"p{n}"}, user=user))
                await d.wait_until(lambda i=asked[-1]: i.response_type == 5, 15, "a defer")
            await d.wait_until(lambda: r.api_requests(), 15, "the first backend call")

            def shown(inter: object) -> str:
                msg = d.original(inter)
                return (msg.content or "") if msg is not None else ""

            await d.wait_until(
                lambda: sorted(shown(i)[:1] for i in asked) == ["⏳", "⏳", "🎨"],
                15,
                "one job at the backend, two queued",
            )
            # Which job reached the backend first is the bot's business, not the order sent.
            lost_inter = next(i for i in asked if shown(i).startswith("🎨"))
            queued = [i for i in asked if i is not lost_inter]
            first.proc.send_signal(signal.SIGKILL)
            await first.wait(10)

        r.api_delay = 0.0
        second = BotProcess(d, data, launcher=False, env=env)
        async with second:
            await second.start_and_wait_ready()
            # The job that was at the backend: refunded, its member told, with Retry.
            await d.wait_until(
                lambda: "restarted" in (d.original(lost_inter).content or ""), 20, "the lost job"
            )
            lost = d.original(lost_inter)
            assert lost.custom_ids() and lost.custom_ids()[0].startswith("remix:retry:")
            # The queued ones ran after the restart and were posted as replies to the request.
            for inter in queued:
                await d.wait_until(
                    lambda i=inter: _result_replies(d, i.original_id),
                    30,
                    "a queued job's result after the restart",
                )
            # Retry: only its member may press it; for them it runs again and posts.
            seen = set(d.messages)
            owner = lost_inter.user_id
            other = d.bob if owner == d.alice["id"] else d.alice
            member = d.alice if owner == d.alice["id"] else d.bob
            refused = await d.click(lost.id, lost.custom_ids()[0], user=other)
            await d.wait_until(lambda: refused.response_type == 4, 10, "the refusal")
            assert any("Only the member" in text for text in ephemeral_texts(d))
            retried = await d.click(lost.id, lost.custom_ids()[0], user=member)
            await d.wait_until(
                lambda: (m := d.original(retried)) is not None and bool(m.attachments),
                30,
                "the retry's result",
            )
            assert set(d.messages) - seen
            assert await second.stop(signal.SIGTERM) == 0

        settings = load_settings({**env, **d.env(), "REMIXBOT_DATA_DIR": str(data)}, dotenv=None)
        async with await Store.from_settings(settings) as store:
            jobs = sorted(await store.list_jobs(), key=lambda j: j.id)
            # The three jobs, in whichever order they reached the backend, then the retry.
            states = [j.state for j in jobs[:3]]
            assert sorted(states) == ["delivered", "delivered", "unknown"]
            assert jobs[3].state == "delivered"
            assert await store.check_books() == []
            lost_job = jobs[states.index("unknown")]
            assert (await store.ledger_balance(lost_job.id)).charged == 0


def _result_replies(d: FakeDiscord, original_id: str | None) -> list[dict]:
    """Channel messages with files the bot posted as a reply to `original_id`."""
    out = []
    for call in d.calls_to("POST", r"/channels/\d+/messages"):
        body = call.json if isinstance(call.json, dict) else {}
        ref = body.get("message_reference") or {}
        if str(ref.get("message_id")) == str(original_id) and body.get("attachments"):
            out.append(body)
    return out


async def test_request_messages_the_bot_token_cannot_edit_are_replaced(tmp_path: Path) -> None:
    """After a restart the bot edits each member's request message with the bot token; where
    Discord refuses that (it documents only the interaction's token for a deferred response),
    the member is told in a new message and the result still comes."""
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        env = fake_env(r, REMIXBOT_INFLIGHT_IMAGES="1", REMIXBOT_BACKEND_TIMEOUT="60")
        r.api_delay = 30.0  # the first job sits at the backend when the crash comes
        first = BotProcess(d, data, launcher=False, env=env)
        async with first:
            await first.start_and_wait_ready()
            await d.wait_until(lambda: d.commands, 15, "the command sync")
            asked = []
            for n, user in enumerate([d.alice, d.bob]):
                image = d.upload_attachment(f"{n}.png", png_bytes(color=(40 * n, 90, 200)))
                asked.append(await d.slash("remix", {"image": image, "prompt": f"p{n}"}, user=user))
            await d.wait_until(
                lambda: (
                    sorted((d.original(i).content or "")[:1] for i in asked if d.original(i))
                    == ["⏳", "🎨"]
                ),
                30,
                "one job at the backend, one queued",
            )
            await d.wait_until(lambda: r.api_requests(), 15, "the first backend call")
            lost = next(i for i in asked if d.original(i).content.startswith("🎨"))
            queued = next(i for i in asked if i is not lost)
            first.proc.send_signal(signal.SIGKILL)
            await first.wait(10)

        r.api_delay = 0.0
        originals = "|".join(str(d.original(i).id) for i in asked)
        d.fail(
            "PATCH",
            rf"/channels/{d.channel_id}/messages/({originals})",
            403,
            times=50,
            code=50005,
            message="Cannot edit a message authored by another user",
        )
        before = set(d.messages)
        second = BotProcess(d, data, launcher=False, env=env)
        async with second:
            await second.start_and_wait_ready()

            def new_mentioning(user_id: str, words: str) -> object:
                return next(
                    (
                        m
                        for key, m in d.messages.items()
                        if key not in before
                        and (m.content or "").startswith(f"<@{user_id}>")
                        and words in (m.content or "")
                    ),
                    None,
                )

            told = await d.wait_until(
                lambda: new_mentioning(lost.user_id, "restarted"), 30, "the lost job's member told"
            )
            assert told.custom_ids() and told.custom_ids()[0].startswith("remix:retry:")
            await d.wait_until(
                lambda: _result_replies(d, d.original(queued).id), 30, "the queued job's result"
            )
            assert d.original(lost).content.startswith("🎨")  # refused: left as it was
            assert await second.stop(signal.SIGTERM) == 0

        settings = load_settings({**env, **d.env(), "REMIXBOT_DATA_DIR": str(data)}, dotenv=None)
        async with await Store.from_settings(settings) as store:
            assert sorted(j.state for j in await store.list_jobs()) == ["delivered", "unknown"]
            assert await store.check_books() == []

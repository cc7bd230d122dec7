"""Cancel on the progress message: a queued job is cancelled and refunded at once (its message
says so); a running job cannot be recalled and nothing changes; only the requester or a server
admin may press it; a Cancel whose job belongs elsewhere does nothing; it works after a crash."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from bot.settings import load_settings
from bot.store import Store
from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import BotProcess, png_bytes
from tests.fakeremix import running_fake
from tests.fakeremix.helpers import fake_env
from tests.remixworld import World, running_world


async def _queued(w: World, **options: Any) -> tuple[Any, Any, str]:
    """A /remix held in the queue (the scheduler paused): its interaction, job and Cancel id."""
    w.services.scheduler.pause(30.0)
    inter = await w.slash_remix(png_bytes(), **options)

    def cancel_button() -> str | None:
        msg = w.discord.original(inter)
        ids = msg.custom_ids() if msg is not None else []
        return next((c for c in ids if c.startswith("remix:cancel:")), None)

    custom_id = await w.discord.wait_until(cancel_button, 10, "Cancel on the progress message")
    [job] = await w.services.store.list_jobs()
    assert custom_id == f"remix:cancel:{job.id}" and job.state == "queued"
    return inter, job, custom_id


async def test_the_requester_cancels_a_queued_job_and_is_refunded_at_once(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter, job, custom_id = await _queued(w, num_images=2)
        click = await w.discord.click(inter.original_id, custom_id)
        assert await w.private_answer(click) == "Cancelled; you were not charged."
        [closed] = await w.jobs_final(1)
        assert closed.state == "cancelled"
        status = await w.services.store.quota_status(job.user_id, job.guild_id)
        assert (status.used, status.reserved) == (0, 0)
        progress = w.discord.original(inter)
        assert "cancelled before it started" in progress.content
        assert progress.custom_ids() == []  # the Cancel button went with it
        w.services.scheduler._resume()  # the queue moves again: nothing is left to run
        assert w.remix.api_requests() == []
        assert await w.books_balance() == []


async def test_someone_else_gets_a_private_no_and_the_job_stays(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter, job, custom_id = await _queued(w)
        click = await w.discord.click(inter.original_id, custom_id, user=w.discord.bob)
        answer = await w.private_answer(click)
        assert (
            answer == "Only the member who asked for this remix, or a server admin, can cancel it."
        )
        assert (await w.services.store.find_job(job.id)).state == "queued"
        # A server admin (the owner here) may cancel any job; its member is refunded.
        admin = await w.discord.click(inter.original_id, custom_id, user=w.discord.owner)
        assert await w.private_answer(admin) == "Cancelled; its member was not charged."
        [closed] = await w.jobs_final(1)
        assert closed.state == "cancelled" and await w.books_balance() == []


async def test_a_running_job_cannot_be_recalled_and_nothing_changes(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        w.remix.api_delay = 1.5  # the job sits at the backend
        inter = await w.slash_remix(png_bytes())
        await w.discord.wait_until(lambda: w.remix.requests, 10, "the backend call")
        msg = await w.discord.wait_until(
            lambda: (m := w.discord.original(inter)) and m.custom_ids() and m, 10, "progress"
        )
        [job] = await w.services.store.list_jobs()
        click = await w.discord.click(msg.id, f"remix:cancel:{job.id}")
        answer = await w.private_answer(click)
        assert answer.startswith("That remix is already generating and cannot be cancelled")
        await w.result_message(inter)
        [done] = await w.jobs_final(1)
        assert (done.state, done.images_delivered) == ("delivered", 1)


async def test_a_cancel_naming_another_channel_s_job_does_nothing(tmp_path: Path) -> None:
    async with FakeDiscord() as d:
        other = d.add_channel("elsewhere")
        async with running_world(tmp_path / "data", discord=d) as w:
            _inter, job, custom_id = await _queued(w)
            # A message in another channel carrying a Cancel for this job (a forged custom id).
            elsewhere = await w.discord.post_message("hi", channel_id=other)
            elsewhere.components = [
                {
                    "type": 1,
                    "components": [{"type": 2, "style": 2, "label": "x", "custom_id": custom_id}],
                }
            ]
            click = await w.discord.click(elsewhere.id, custom_id)
            assert await w.acknowledged(click) == 6  # acknowledged silently, nothing else
            assert (await w.services.store.find_job(job.id)).state == "queued"
            assert not [m for m in w.discord.messages.values() if m.interaction_id == click.id]


async def test_cancel_works_on_a_job_queued_again_after_a_crash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        env = fake_env(r, REMIXBOT_INFLIGHT_IMAGES="1", REMIXBOT_BACKEND_TIMEOUT="60")
        r.api_delay = 30.0  # the first job sits at the backend; the others wait behind it
        first = BotProcess(d, data, launcher=False, env=env)
        asked = []
        async with first:
            await first.start_and_wait_ready()
            await d.wait_until(lambda: d.commands, 15, "the command sync")
            for n in range(3):
                image = d.upload_attachment(f"{n}.png", png_bytes(color=(60 * n, 90, 200)))
                asked.append(await d.slash("remix", {"image": image, "prompt": f"p{n}"}))
                await d.wait_until(lambda i=asked[-1]: i.response_type == 5, 15, "a defer")
            await d.wait_until(lambda: r.api_requests(), 15, "the first backend call")
            # Kill only once the two later jobs are in the books: a /remix is recorded after its
            # defer (the attachment is fetched and checked first), and one killed before that was
            # never accepted, so there would be nothing to queue again.
            try:
                await d.wait_until(lambda: len(_queued_now(d, asked)) == 2, 30, "two jobs queued")
            except TimeoutError as exc:
                shown = _shown(d, asked)
                raise AssertionError(f"two jobs were not shown queued: {shown}") from exc
            first.proc.send_signal(signal.SIGKILL)
            await first.wait(10)

        second = BotProcess(d, data, launcher=False, env=env)
        async with second:
            await second.start_and_wait_ready()

            def queued_again() -> Any:
                # The second process's lines start with the member's mention (the first's do not).
                again = [q for q in _queued_now(d, asked) if q[0].content.startswith("<@")]
                return again and again[0]

            try:
                msg, custom_id = await d.wait_until(queued_again, 30, "a job queued again")
            except TimeoutError as exc:  # say what each member was shown instead
                shown = _shown(d, asked)
                raise AssertionError(f"no job shown queued again with Cancel: {shown}") from exc
            mark = len(d.messages)
            click = await d.click(msg.id, custom_id)
            await d.wait_until(
                lambda: any(
                    m.interaction_id == click.id and m.content == "Cancelled; you were not charged."
                    for m in d.messages.values()
                ),
                15,
                "the private answer",
            )
            await d.wait_until(
                lambda: "cancelled before it started" in d.messages[msg.id].content, 15, "the edit"
            )
            assert len(d.messages) >= mark
            r.stop()  # release the job still at the backend
            await second.stop(signal.SIGTERM)

        settings = load_settings({**env, **d.env(), "REMIXBOT_DATA_DIR": str(data)}, dotenv=None)
        async with await Store.from_settings(settings) as store:
            cancelled = await store.find_job(int(custom_id.rsplit(":", 1)[1]))
            assert cancelled is not None and cancelled.state == "cancelled"
            assert (await store.ledger_balance(cancelled.id)).charged == 0
            assert await store.check_books() == []


def _queued_now(d: FakeDiscord, asked: list[Any]) -> list[tuple[Any, str]]:
    """Each original response that shows a queued job with its Cancel button, with that id."""
    found = []
    for inter in asked:
        msg = d.original(inter)
        if msg and "Queued" in msg.content:
            ids = [c for c in msg.custom_ids() if c.startswith("remix:cancel:")]
            if ids:
                found.append((msg, ids[0]))
    return found


def _shown(d: FakeDiscord, asked: list[Any]) -> list[Any]:
    """What each member's original response says (for a failure's message)."""
    return [(m.content, m.custom_ids()) if (m := d.original(i)) else None for i in asked]

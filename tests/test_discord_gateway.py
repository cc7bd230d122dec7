"""The gateway: a dropped connection and a RECONNECT are resumed; an invalid session re-identifies."""

from __future__ import annotations

from pathlib import Path

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import png_bytes, running_bot


async def _probe_round_trip(fake: FakeDiscord, n: int) -> None:
    att = fake.upload_attachment("x.png", png_bytes())
    inter = await fake.slash("probe", {"image": att, "n": n})
    await fake.wait_until(
        lambda: (m := fake.original(inter)) is not None and m.custom_ids() == [f"probe:{n}"],
        what=f"the /probe {n} result",
    )


async def test_dropped_gateway_is_resumed_and_events_still_flow(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        session_id = fake.current.session_id  # type: ignore[union-attr]
        await _probe_round_trip(fake, 1)
        seq_before = fake.current.seq  # type: ignore[union-attr]

        await fake.drop_gateway()
        resume = await fake.wait_until(lambda: fake.received(6), what="RESUME")
        assert resume[0].d["session_id"] == session_id
        assert resume[0].d["seq"] == seq_before
        assert resume[0].d["token"] == fake.token
        await fake.wait_until(
            lambda: any(f.t == "RESUMED" for f in fake.frames), what="RESUMED sent"
        )
        assert len(fake.received(2)) == 1  # resumed, not identified again
        await _probe_round_trip(fake, 2)


async def test_events_sent_while_disconnected_are_replayed_on_resume(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        await fake.drop_gateway()
        # Sent while the bot is away: Discord replays missed events after RESUME.
        att = fake.upload_attachment("late.png", png_bytes())
        inter = await fake.slash("probe", {"image": att, "n": 3})
        await fake.wait_until(
            lambda: (m := fake.original(inter)) is not None and m.custom_ids() == ["probe:3"],
            what="the replayed /probe result",
        )
        assert len(fake.received(6)) == 1


async def test_reconnect_request_is_resumed(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        connections = fake.connections
        await fake.request_reconnect()
        await fake.wait_until(lambda: fake.received(6), what="RESUME after op 7")
        assert fake.connections == connections + 1
        await _probe_round_trip(fake, 4)


async def test_invalid_session_makes_the_bot_identify_again(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_bot(fake, tmp_path):
        first = fake.current
        await fake.invalidate_session(resumable=False)
        await fake.wait_until(lambda: len(fake.received(2)) == 2, 15, "a second IDENTIFY")
        await fake.wait_until(lambda: fake.current is not first, what="a new session")
        await _probe_round_trip(fake, 5)


async def test_heartbeats_are_acknowledged(tmp_path: Path) -> None:
    async with FakeDiscord(heartbeat_interval_ms=200) as fake, running_bot(fake, tmp_path):
        await fake.wait_until(lambda: len(fake.received(1)) >= 3, 5, "three heartbeats")
        acks = [f for f in fake.frames if f.direction == "out" and f.op == 11]
        assert len(acks) >= 3

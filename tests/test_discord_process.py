"""`remixbot run` as a separate process against the fake: bad tokens, SIGTERM/SIGINT, restarts."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import BotProcess, png_bytes

COMMANDS = r"/applications/\d+/commands"


async def test_missing_token_is_one_sentence_and_nonzero(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        proc = BotProcess(fake, tmp_path / "data", launcher=False, env={"DISCORD_TOKEN": ""})
        async with proc:
            await proc.start()
            code = await proc.wait()
        lines = proc.output().strip().splitlines()
        assert code != 0
        assert lines == [
            "remixbot: DISCORD_TOKEN is not set; copy the bot token from the Discord Developer Portal."
        ]
        assert fake.calls == []


async def test_rejected_token_is_one_sentence_and_nonzero(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        bad = "bad-token-that-must-never-be-printed-0123456789"
        proc = BotProcess(fake, tmp_path / "data", launcher=False, env={"DISCORD_TOKEN": bad})
        async with proc:
            await proc.start()
            code = await proc.wait()
        out = proc.output()
        assert code == 2
        assert out.strip().splitlines()[-1] == (
            "remixbot: Discord rejected DISCORD_TOKEN; copy the token again from the Bot page of "
            "the Developer Portal (reset it there if it leaked)."
        )
        assert "Traceback" not in out
        assert bad not in out
        assert fake.calls_to("GET", "/users/@me")[0].status == 401


async def test_unreachable_api_is_one_sentence(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        port = fake.port
    # The fake is stopped: nothing listens on its port any more.
    env = {
        "DISCORD_TOKEN": "x" * 30,
        "DISCORD_API_BASE": f"http://127.0.0.1:{port}/api/v10",
    }
    async with FakeDiscord() as other:
        proc = BotProcess(other, tmp_path / "data", launcher=False, env=env)
        async with proc:
            await proc.start()
            code = await proc.wait()
    last = proc.output().strip().splitlines()[-1]
    assert code != 0
    assert last.startswith(
        f"remixbot: Could not reach Discord's API at http://127.0.0.1:{port}/api/v10"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_remixbot_run_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    async with FakeDiscord() as fake:
        proc = BotProcess(fake, tmp_path / "data", launcher=False)
        async with proc:
            await proc.start_and_wait_ready()
            started = time.monotonic()
            code = await proc.stop(sig, within=10)
            elapsed = time.monotonic() - started
        out = proc.output()
        assert code == 0, out
        assert elapsed < 5
        assert "stopped cleanly" in out
        assert fake.token not in out
        await fake.wait_until(lambda: fake.current and fake.current.ws is None, 5, "socket closed")


async def test_restarted_process_reconnects_and_old_button_still_works(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as fake:
        # DEBUG logging must still keep the bot token and interaction tokens out of the log.
        first = BotProcess(fake, data, env={"REMIXBOT_LOG_LEVEL": "debug"})
        async with first:
            await first.start_and_wait_ready()
            att = fake.upload_attachment("cat.png", png_bytes())
            inter = await fake.slash("probe", {"image": att, "n": 42})
            msg = await fake.wait_for_message(lambda m: m.custom_ids() == ["probe:42"], within=15)
            assert msg.id == inter.original_id
            assert await first.stop(signal.SIGTERM) == 0
        assert len(fake.calls_to("PUT", COMMANDS)) == 1

        second = BotProcess(fake, data)
        async with second:
            await second.start_and_wait_ready()
            assert len(fake.received(2)) == 2  # a fresh IDENTIFY from the new process
            assert len(fake.calls_to("PUT", COMMANDS)) == 1  # same shape: no second sync
            seen = set(fake.messages)
            await fake.click(msg.id, "probe:42", user=fake.bob)
            reply = await fake.wait_for_message(after=seen, within=15)
            assert reply.content == f"clicked 42 by {fake.bob['id']}"
            assert await second.stop(signal.SIGTERM) == 0
        logs = first.output() + second.output()
        assert fake.token not in logs
        assert inter.token not in logs
        assert "DEBUG" in first.output()
